"""Raw columns -> a numeric feature matrix, as one unfitted scikit-learn ColumnTransformer.

The transformer is fitted on the training split only and saved inside the model, so predict
applies exactly the training-time preparation. Blocks by column kind (output names prefixed
`num__`, `bool__`, `cat__`, `date__`, `text__`):

- numeric:     [clip to training quantiles] -> impute (+ missing indicators) -> scale
- boolean:     yes/no, true/false, 0/1 -> 0/1 -> impute the most frequent value
- categorical: impute -> onehot / ordinal, or for columns with more than
               `high_cardinality_threshold` levels (decided at fit time) target / frequency / ordinal
- datetime:    date parts and days since the earliest training date -> impute median -> scale
- text:        TF-IDF per column (sparse); with sparse_ok=False a TruncatedSVD of it (dense)
- image:       a column of image file paths -> pixels in [0, 1] (`img__`)
- sequence:    a column of number lists -> length, mean, std, min, max, first, last, slope (`seq__`)
- identifier:  dropped

Families that read images or sequences whole (cnn; rnn and transformer) get `inputs="image"` or
`inputs="sequence"`: a preprocessor of that one kind of column, handed to the network as it is
(pixels for a CNN; the raw text or the number lists for an RNN/Transformer).
"""

from __future__ import annotations

import logging

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from forgeml.data.transformers import (
    BooleanEncoder,
    CategoricalEncoder,
    DatetimeFeatures,
    NumericCleaner,
    TextFeatures,
)
from forgeml.data.images import ImagePixels
from forgeml.data.sequences import SequenceCells, SequenceSummary
from forgeml.data.text import RawText
from forgeml.errors import DataError
from forgeml.spec import PreprocessingSpec

log = logging.getLogger(__name__)

_SCALERS = {"standard": StandardScaler, "robust": RobustScaler, "minmax": MinMaxScaler}
TEXT_SVD_COMPONENTS = 100


def build_preprocessor(
    kinds: dict[str, str],
    spec: PreprocessingSpec,
    task: str,
    *,
    seed: int = 0,
    scale: bool = True,
    sparse_ok: bool = True,
    inputs: str = "table",
) -> ColumnTransformer:
    """An unfitted ColumnTransformer for feature columns `kinds` (column -> kind), in `kinds` order.

    Input: a DataFrame with (at least) those raw columns. Output: a float matrix, sparse CSR only
    when text columns are present, sparse_ok is True and the result is mostly zeros.
    scale=False (tree models) skips numeric and date scaling. Categorical cardinality is decided
    when the transformer is fitted, so the caller passes kinds only.
    """
    columns: dict[str, list[str]] = {}
    for column, kind in kinds.items():
        columns.setdefault(kind, []).append(column)
    unknown = sorted(set(columns) - {"numeric", "boolean", "categorical", "datetime", "text", "image", "sequence",
                                      "identifier"})
    if unknown:
        raise DataError(f"unknown column kind(s) {', '.join(unknown)} in {kinds}")
    if columns.get("identifier"):
        log.debug("identifier columns left out of the features: %s", ", ".join(columns["identifier"]))
    if inputs != "table":
        return _whole_inputs(columns, inputs, spec)

    blocks = []
    if columns.get("numeric"):
        blocks.append(("num", _numeric(spec, scale), columns["numeric"]))
    if columns.get("boolean"):
        bool_steps = [("encode", BooleanEncoder()), ("impute", SimpleImputer(strategy="most_frequent"))]
        blocks.append(("bool", Pipeline(bool_steps), columns["boolean"]))
    if columns.get("categorical"):
        encoder = CategoricalEncoder(
            encoding=spec.categorical_encoding,
            high_cardinality_encoding=spec.high_cardinality_encoding,
            high_cardinality_threshold=spec.high_cardinality_threshold,
            min_frequency=spec.rare_category_min_count,
            imputation=spec.categorical_imputation,
            target_type="continuous" if task == "regression" else "auto",
            random_state=seed,
        )
        blocks.append(("cat", encoder, columns["categorical"]))
    if columns.get("datetime"):
        date_steps = [
            ("parts", DatetimeFeatures(features=list(spec.datetime_features))),
            ("impute", SimpleImputer(strategy="median")),
        ]
        if scale and spec.scaling != "none":
            date_steps.append(("scale", _SCALERS[spec.scaling]()))
        blocks.append(("date", Pipeline(date_steps), columns["datetime"]))
    has_text = bool(columns.get("text"))
    if has_text:
        text = TextFeatures(
            max_features=spec.text_max_features,
            dense=not sparse_ok,
            n_components=TEXT_SVD_COMPONENTS,
            random_state=seed,
        )
        blocks.append(("text", text, columns["text"]))
    if columns.get("image"):
        for column in columns["image"]:
            blocks.append((f"img_{column}" if len(columns["image"]) > 1 else "img", _pixels(spec), [column]))
    if columns.get("sequence"):
        seq_steps = [("summary", SequenceSummary()), ("impute", SimpleImputer(strategy="median"))]
        if scale and spec.scaling != "none":
            seq_steps.append(("scale", _SCALERS[spec.scaling]()))
        blocks.append(("seq", Pipeline(seq_steps), columns["sequence"]))
    if not blocks:
        listing = ", ".join(f"{c} ({k})" for c, k in kinds.items()) or "none"
        raise DataError(
            f"no usable feature columns (columns: {listing}); identifier columns are never used as features, "
            "override a kind with data.column_kinds in the spec"
        )
    return ColumnTransformer(
        blocks,
        remainder="drop",
        sparse_threshold=0.3 if has_text and sparse_ok else 0.0,
        verbose_feature_names_out=True,
    )


def _numeric(spec: PreprocessingSpec, scale: bool) -> Pipeline:
    strategy = spec.numeric_imputation
    imputer = SimpleImputer(
        strategy=strategy,
        fill_value=0.0 if strategy == "constant" else None,
        add_indicator=spec.missing_indicators,
    )
    steps = [("clean", NumericCleaner(clip=spec.outlier_clipping)), ("impute", imputer)]
    if scale and spec.scaling != "none":
        steps.append(("scale", _SCALERS[spec.scaling]()))
    return Pipeline(steps)


def _pixels(spec: PreprocessingSpec) -> ImagePixels:
    if spec.image_size is None:
        return ImagePixels()
    sides = [spec.image_size] if isinstance(spec.image_size, int) else list(spec.image_size)
    return ImagePixels(size=(sides[0], sides[-1]))


def _whole_inputs(columns: dict[str, list[str]], inputs: str, spec: PreprocessingSpec) -> ColumnTransformer:
    """The preprocessor of a family that reads one kind of column whole (see the module docstring)."""
    def others(used: list[str]) -> None:
        rest = [c for kind, cols in columns.items() if kind != "identifier" for c in cols if c not in used]
        if rest:
            log.info("a %s network reads %s only; columns left out: %s", inputs, ", ".join(used), ", ".join(rest))

    if inputs == "image":
        images = columns.get("image", [])
        if len(images) != 1:
            found = f"{len(images)} ({', '.join(images)})" if images else "none"
            raise DataError(f"a cnn reads exactly one image column (file paths, or train on an image folder); found {found}")
        others(images)
        return ColumnTransformer([("img", _pixels(spec), images)], remainder="drop", sparse_threshold=0.0)
    if inputs == "sequence":
        if columns.get("sequence"):
            others(columns["sequence"])
            return ColumnTransformer([("seq", SequenceCells(), columns["sequence"])], remainder="drop", sparse_threshold=0.0)
        texts = columns.get("text", [])
        if len(texts) != 1:
            found = f"{len(texts)} text columns ({', '.join(texts)})" if texts else "no text or sequence column"
            raise DataError(f"rnn and transformer read one text column or sequence columns (lists of numbers); found "
                            f"{found}; set data.column_kinds to mark the column")
        others(texts)
        return ColumnTransformer([("text", RawText(), texts)], remainder="drop", sparse_threshold=0.0)
    raise DataError(f"unknown network inputs '{inputs}' (known: table, image, sequence)")
