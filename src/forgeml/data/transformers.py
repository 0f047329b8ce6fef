"""Custom scikit-learn transformers used by `prepare.build_preprocessor`.

Each stores its constructor arguments verbatim, keeps learned state in attributes ending in `_`
made of numpy arrays, python primitives and scikit-learn estimators only (so skops can save it),
accepts a pandas DataFrame (pandas 3 `str` columns included) or a 2-D array, and implements
`get_feature_names_out`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

MISSING = "__missing__"
TRUE_TOKENS = frozenset({"true", "t", "yes", "y", "1", "on"})
FALSE_TOKENS = frozenset({"false", "f", "no", "n", "0", "off"})


class _FrameTransformer(TransformerMixin, BaseEstimator):
    """Shared input handling: remember column names at fit, hand a DataFrame to the subclass."""

    def _frame(self, X: Any, *, fit: bool) -> pd.DataFrame:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object))
        if fit:
            self.n_features_in_ = frame.shape[1]
            if isinstance(X, pd.DataFrame):
                self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        else:
            check_is_fitted(self, "n_features_in_")
            if frame.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"{type(self).__name__} was fitted on {self.n_features_in_} columns, got {frame.shape[1]}"
                )
        return frame

    def _input_names(self, input_features: Sequence[str] | None = None) -> list[str]:
        if input_features is not None:
            return [str(c) for c in input_features]
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return [str(c) for c in names]
        return [f"x{i}" for i in range(self.n_features_in_)]


def as_text(values: pd.Series) -> np.ndarray:
    """A column as an object array of strings with np.nan for missing; 3.0 -> '3', True -> 'True'."""

    def one(v: Any) -> Any:
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)

    values = values.astype(object)
    mask = values.isna().to_numpy()
    out = np.full(len(values), np.nan, dtype=object)
    out[~mask] = [one(v) for v in values.to_numpy()[~mask]]
    return out


class NumericCleaner(OneToOneFeatureMixin, _FrameTransformer):
    """Columns as float64 (text that is not a number becomes NaN), optionally clipped to training quantiles.

    clip: q in (0, 0.5) clips each column to its [q, 1 - q] training quantiles; None keeps values.
    """

    def __init__(self, clip: float | None = None):
        self.clip = clip

    def fit(self, X: Any, y: Any = None) -> NumericCleaner:
        values = self._numbers(self._frame(X, fit=True))
        if self.clip:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                self.lower_ = np.nanquantile(values, self.clip, axis=0)
                self.upper_ = np.nanquantile(values, 1 - self.clip, axis=0)
        else:
            self.lower_ = self.upper_ = None
        return self

    def transform(self, X: Any) -> np.ndarray:
        values = self._numbers(self._frame(X, fit=False))
        if self.lower_ is not None:
            values = np.clip(values, self.lower_, self.upper_)  # NaN bounds leave values as they are
        return values

    @staticmethod
    def _numbers(frame: pd.DataFrame) -> np.ndarray:
        out = np.empty(frame.shape, dtype=np.float64)
        for i in range(frame.shape[1]):
            col = frame.iloc[:, i]
            if pd.api.types.is_timedelta64_dtype(col.dtype):
                col = col.dt.total_seconds()
            elif pd.api.types.is_bool_dtype(col.dtype):
                col = col.astype(float)
            elif not pd.api.types.is_numeric_dtype(col.dtype):
                col = pd.to_numeric(col.astype(object).map(_strip), errors="coerce")
            out[:, i] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return out


def _strip(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


class BooleanEncoder(OneToOneFeatureMixin, _FrameTransformer):
    """Two-valued columns as 0.0 / 1.0 with NaN for missing or unseen values.

    yes/true/t/y/1/on -> 1 and no/false/f/n/0/off -> 0 (any case). Other training levels take the
    opposite of the one value the tokens gave, or, when no token matched, sorted order (first -> 0,
    the rest -> 1); levels unseen in training become NaN.
    """

    def fit(self, X: Any, y: Any = None) -> BooleanEncoder:
        frame = self._frame(X, fit=True)
        self.mappings_ = []
        for i in range(frame.shape[1]):
            levels = sorted({v for v in as_text(frame.iloc[:, i]) if isinstance(v, str)})
            mapping = {}
            for level in levels:
                low = level.strip().lower()
                if low in TRUE_TOKENS or low == "1.0":
                    mapping[level] = 1.0
                elif low in FALSE_TOKENS or low == "0.0":
                    mapping[level] = 0.0
            others = [level for level in levels if level not in mapping]
            if not mapping and levels:
                mapping = {level: (0.0 if j == 0 else 1.0) for j, level in enumerate(levels)}
            elif others and len(set(mapping.values())) == 1:  # e.g. 'F' matched false: 'M' is the other value
                opposite = 1.0 - next(iter(mapping.values()))
                mapping.update({level: opposite for level in others})
            self.mappings_.append(mapping)
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = self._frame(X, fit=False)
        out = np.full(frame.shape, np.nan)
        for i, mapping in enumerate(self.mappings_):
            text = as_text(frame.iloc[:, i])
            out[:, i] = [mapping.get(v, mapping.get(v.strip(), np.nan)) if isinstance(v, str) else np.nan for v in text]
        return out


class DatetimeFeatures(_FrameTransformer):
    """Date parts of each datetime column as floats (NaN where the date is missing or unparseable).

    features: names from year, month, day, dayofweek, dayofyear, hour, minute, is_weekend, elapsed_days
    (days since the earliest training date of that column). Output: n_columns * len(features) columns.
    """

    def __init__(self, features: Sequence[str] = ("year", "month", "day", "dayofweek", "hour", "elapsed_days")):
        self.features = features

    def fit(self, X: Any, y: Any = None) -> DatetimeFeatures:
        frame = self._frame(X, fit=True)
        self.min_days_ = [float(np.nanmin(d)) if np.isfinite(d).any() else 0.0 for d in self._days(frame)]
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = self._frame(X, fit=False)
        blocks = []
        for i in range(frame.shape[1]):
            stamps = _parse_dates(frame.iloc[:, i])
            for feature in self.features:
                blocks.append(self._part(stamps, feature, self.min_days_[i]))
        if not blocks:
            return np.empty((len(frame), 0))
        return np.column_stack(blocks).astype(np.float64)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self, "min_days_")
        return np.asarray([f"{c}_{f}" for c in self._input_names(input_features) for f in self.features], dtype=object)

    def _days(self, frame: pd.DataFrame) -> list[np.ndarray]:
        return [self._part(_parse_dates(frame.iloc[:, i]), "elapsed_days", 0.0) for i in range(frame.shape[1])]

    @staticmethod
    def _part(stamps: pd.Series, feature: str, origin_days: float) -> np.ndarray:
        dt = stamps.dt
        if feature == "elapsed_days":
            days = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(days=1)
            return days.to_numpy(dtype=np.float64, na_value=np.nan) - origin_days
        if feature == "is_weekend":
            values = (dt.day_of_week >= 5).astype(float).where(stamps.notna())
        else:
            attribute = _DATE_PARTS.get(feature)
            if attribute is None:
                raise ValueError(f"unknown datetime feature '{feature}' (known: {', '.join(_DATE_PARTS)}, is_weekend)")
            values = getattr(dt, attribute)
        return values.to_numpy(dtype=np.float64, na_value=np.nan)


_DATE_PARTS = {
    "year": "year",
    "month": "month",
    "day": "day",
    "dayofweek": "day_of_week",
    "dayofyear": "day_of_year",
    "hour": "hour",
    "minute": "minute",
    "elapsed_days": "elapsed_days",
}


def _parse_dates(col: pd.Series) -> pd.Series:
    """Timestamps in UTC (naive ones are taken as UTC); unparseable values become NaT."""
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return col.dt.tz_localize("UTC") if col.dt.tz is None else col.dt.tz_convert("UTC")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(col.astype(object), errors="coerce", format="mixed", utc=True)


class FrequencyEncoder(OneToOneFeatureMixin, _FrameTransformer):
    """Each category replaced by its share of the training rows (unseen categories -> 0)."""

    def fit(self, X: Any, y: Any = None) -> FrequencyEncoder:
        frame = self._frame(X, fit=True)
        self.frequencies_ = []
        for i in range(frame.shape[1]):
            shares = pd.Series(as_text(frame.iloc[:, i])).fillna(MISSING).value_counts(normalize=True)
            self.frequencies_.append({str(k): float(v) for k, v in shares.items()})
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = self._frame(X, fit=False)
        out = np.zeros(frame.shape)
        for i, table in enumerate(self.frequencies_):
            text = pd.Series(as_text(frame.iloc[:, i])).fillna(MISSING)
            out[:, i] = text.map(table).fillna(0.0).to_numpy(dtype=np.float64)
        return out


class CategoricalEncoder(_FrameTransformer):
    """Impute and encode categorical columns, choosing per column at fit time by its number of levels.

    Columns with at most `high_cardinality_threshold` levels get `encoding` (onehot | ordinal, levels seen
    fewer than `min_frequency` times grouped); the others get `high_cardinality_encoding` (target |
    frequency | ordinal). Target encoding is cross-fitted in `fit_transform` (folds seeded by
    `random_state`), so training rows never see their own target. Missing values become the level
    '__missing__' (imputation='constant') or the training mode (imputation='most_frequent').
    """

    def __init__(
        self,
        encoding: str = "onehot",
        high_cardinality_encoding: str = "target",
        high_cardinality_threshold: int = 20,
        min_frequency: int = 5,
        imputation: str = "constant",
        target_type: str = "auto",
        random_state: int = 0,
    ):
        self.encoding = encoding
        self.high_cardinality_encoding = high_cardinality_encoding
        self.high_cardinality_threshold = high_cardinality_threshold
        self.min_frequency = min_frequency
        self.imputation = imputation
        self.target_type = target_type
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> CategoricalEncoder:
        self._fit(X, y)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        text = self._fit(X, y)
        low = self._encode_low(text)
        if not self.high_columns_:
            return low
        high_text = text[:, self.high_columns_]
        if self.high_kind_ == "target":
            high = self._cross_fitted(high_text, np.asarray(y))
        else:
            high = self.high_encoder_.transform(high_text)
        return np.hstack([low, np.asarray(high, dtype=np.float64)])

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "fill_values_")
        text = self._impute(self._frame(X, fit=False))
        low = self._encode_low(text)
        if not self.high_columns_:
            return low
        high = self.high_encoder_.transform(text[:, self.high_columns_])
        return np.hstack([low, np.asarray(high, dtype=np.float64)])

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self, "fill_values_")
        names = self._input_names(input_features)
        out: list[str] = []
        if self.low_columns_:
            out += list(self.low_encoder_.get_feature_names_out([names[i] for i in self.low_columns_]))
        if self.high_columns_:
            out += list(self.high_encoder_.get_feature_names_out([names[i] for i in self.high_columns_]))
        return np.asarray(out, dtype=object)

    # -- internals ---------------------------------------------------------------------------

    def _fit(self, X: Any, y: Any) -> np.ndarray:
        from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

        frame = self._frame(X, fit=True)
        raw = np.column_stack([as_text(frame.iloc[:, i]) for i in range(frame.shape[1])]) if frame.shape[1] else None
        self.fill_values_ = []
        for i in range(frame.shape[1]):
            seen = pd.Series(raw[:, i]).dropna()
            mode = str(seen.value_counts().index[0]) if self.imputation == "most_frequent" and len(seen) else MISSING
            self.fill_values_.append(mode)
        text = self._impute_text(raw)
        levels = [len(set(text[:, i])) for i in range(text.shape[1])]
        self.low_columns_ = [i for i, n in enumerate(levels) if n <= self.high_cardinality_threshold]
        self.high_columns_ = [i for i, n in enumerate(levels) if n > self.high_cardinality_threshold]
        if self.encoding == "ordinal":
            self.low_encoder_ = OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1,
                min_frequency=self.min_frequency,
            )
        else:
            self.low_encoder_ = OneHotEncoder(
                handle_unknown="infrequent_if_exist", min_frequency=self.min_frequency,
                sparse_output=False,
            )
        if self.low_columns_:
            self.low_encoder_.fit(text[:, self.low_columns_])
        self.high_kind_ = self.high_cardinality_encoding
        if self.high_kind_ == "target" and y is None:
            warnings.warn("target encoding needs y; using frequency encoding instead", UserWarning, stacklevel=2)
            self.high_kind_ = "frequency"
        self.high_encoder_ = self._new_high_encoder()
        if self.high_columns_:
            targets = [np.asarray(y)] if self.high_kind_ == "target" else []
            self.high_encoder_.fit(text[:, self.high_columns_], *targets)
        return text

    def _new_high_encoder(self) -> Any:
        from sklearn.preprocessing import OrdinalEncoder, TargetEncoder

        if self.high_kind_ == "target":
            return TargetEncoder(target_type=self.target_type)
        if self.high_kind_ == "frequency":
            return FrequencyEncoder()
        return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)

    def _cross_fitted(self, text: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Out-of-fold target encodings for the training rows (what TargetEncoder.fit_transform does)."""
        from sklearn.model_selection import KFold, StratifiedKFold

        n = len(y)
        continuous = self.high_encoder_.target_type_ == "continuous"
        smallest = 0 if continuous else int(np.unique(y.astype(str), return_counts=True)[1].min())
        if smallest >= 2:
            splitter = StratifiedKFold(min(5, int(smallest)), shuffle=True, random_state=self.random_state)
        elif n >= 4:
            splitter = KFold(min(5, n // 2), shuffle=True, random_state=self.random_state)
        else:
            return self.high_encoder_.transform(text)
        width = len(self.high_encoder_.get_feature_names_out())
        out = np.empty((n, width))
        for train, test in splitter.split(text, y.astype(str)):
            fold = self._new_high_encoder().set_params(target_type=self.high_encoder_.target_type_)
            if self.high_encoder_.target_type_ != "continuous":
                # every fold encodes against all training classes so the columns line up
                fold.set_params(categories=self.high_encoder_.categories_)
            fitted = fold.fit(text[train], y[train])
            if fitted.get_feature_names_out().shape[0] != width:  # a class absent from this fold
                out[test] = self.high_encoder_.transform(text[test])
            else:
                out[test] = fitted.transform(text[test])
        return out

    def _impute(self, frame: pd.DataFrame) -> np.ndarray:
        raw = np.column_stack([as_text(frame.iloc[:, i]) for i in range(frame.shape[1])])
        return self._impute_text(raw)

    def _impute_text(self, raw: np.ndarray) -> np.ndarray:
        text = raw.copy()
        for i, fill in enumerate(self.fill_values_):
            column = text[:, i]
            column[pd.isna(column)] = fill
        return text

    def _encode_low(self, text: np.ndarray) -> np.ndarray:
        if not self.low_columns_:
            return np.empty((text.shape[0], 0))
        return np.asarray(self.low_encoder_.transform(text[:, self.low_columns_]), dtype=np.float64)


class TextFeatures(_FrameTransformer):
    """TF-IDF of each free-text column (missing -> ''), one vocabulary of `max_features` per column.

    dense=False returns a sparse CSR matrix; dense=True reduces each column with TruncatedSVD to at
    most `n_components` columns (fewer when the vocabulary or the data is small).
    """

    def __init__(self, max_features: int = 1000, dense: bool = False, n_components: int = 100, random_state: int = 0):
        self.max_features = max_features
        self.dense = dense
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> TextFeatures:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        frame = self._frame(X, fit=True)
        self.vectorizers_, self.svds_ = [], []
        for i in range(frame.shape[1]):
            texts = self._texts(frame.iloc[:, i])
            vectorizer = TfidfVectorizer(max_features=self.max_features, sublinear_tf=True)
            try:
                matrix = vectorizer.fit_transform(texts)
            except ValueError:  # empty vocabulary: every value blank or stop words
                self.vectorizers_.append(None)
                self.svds_.append(None)
                continue
            self.vectorizers_.append(vectorizer)
            k = min(self.n_components, matrix.shape[1] - 1, matrix.shape[0] - 1)
            svd = TruncatedSVD(k, random_state=self.random_state).fit(matrix) if self.dense and k >= 1 else None
            self.svds_.append(svd)
        return self

    def transform(self, X: Any) -> Any:
        import scipy.sparse as sp

        frame = self._frame(X, fit=False)
        blocks = []
        for i, (vectorizer, svd) in enumerate(zip(self.vectorizers_, self.svds_)):
            if vectorizer is None:
                continue
            matrix = vectorizer.transform(self._texts(frame.iloc[:, i]))
            if self.dense:
                matrix = svd.transform(matrix) if svd is not None else matrix.toarray()
            blocks.append(matrix)
        if not blocks:
            return np.empty((len(frame), 0))
        if self.dense:
            return np.hstack(blocks).astype(np.float64)
        return sp.hstack(blocks, format="csr", dtype=np.float64)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self, "vectorizers_")
        out = []
        for name, vectorizer, svd in zip(self._input_names(input_features), self.vectorizers_, self.svds_):
            if vectorizer is None:
                continue
            if self.dense and svd is not None:
                out += [f"{name}_svd{j}" for j in range(svd.n_components)]
            else:
                out += [f"{name}_{token}" for token in vectorizer.get_feature_names_out()]
        return np.asarray(out, dtype=object)

    @staticmethod
    def _texts(col: pd.Series) -> list[str]:
        return [v if isinstance(v, str) else "" for v in as_text(col)]


# The types a fitted preprocessor holds that skops does not trust by default: the transformers above,
# and numpy.dtype (SimpleImputer keeps its fit dtype). Pass them to skops.io.loads(trusted=...).
SKOPS_TRUSTED_TYPES = [
    *(
        f"{__name__}.{cls.__name__}"
        for cls in (
            NumericCleaner, BooleanEncoder, DatetimeFeatures, FrequencyEncoder, CategoricalEncoder, TextFeatures
        )
    ),
    "forgeml.data.images.ImagePixels",
    "forgeml.data.sequences.SequenceCells",
    "forgeml.data.sequences.SequenceSummary",
    "forgeml.data.text.RawText",
    "numpy.dtype",
]
