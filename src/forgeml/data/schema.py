"""The input a model expects: its raw feature columns with kinds and dtypes, and the check at predict time.

`FeatureSchema.validate` turns whatever a user sends (extra columns, numbers as text, dates as
strings, columns in another order) into exactly the frame the preprocessor was fitted on, or raises
a SchemaError that names the column, the expected kind and an example of the bad value.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forgeml.data.transformers import FALSE_TOKENS, TRUE_TOKENS, as_text
from forgeml.errors import SchemaError, did_you_mean

MAX_CATEGORIES = 200


@dataclass
class ColumnInfo:
    """One training column: name, kind (numeric, categorical, ...), pandas dtype, whether it had
    missing values, and its training levels (categorical and boolean only, the 200 most frequent)."""

    name: str
    kind: str
    dtype: str
    nullable: bool = True
    categories: list[str] | None = None


@dataclass
class FeatureSchema:
    """The raw feature columns a model was trained on, in training order."""

    columns: list[ColumnInfo] = field(default_factory=list)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, kinds: dict[str, str]) -> FeatureSchema:
        """Schema of the feature frame `df` (features only, no target); kinds not given are inferred."""
        missing_kinds = [c for c in df.columns if c not in kinds]
        if missing_kinds:
            from forgeml.data.profile import infer_kinds

            kinds = {**infer_kinds(df[missing_kinds]), **kinds}
        columns = []
        for name in df.columns:
            s = df[name]
            kind = kinds[name]
            categories = None
            if kind in ("categorical", "boolean"):
                counts = pd.Series(as_text(s)).value_counts()
                categories = sorted(str(v) for v in counts.index[:MAX_CATEGORIES])
            columns.append(ColumnInfo(str(name), kind, str(s.dtype), bool(s.isna().any()), categories))
        return cls(columns)

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def kinds(self) -> dict[str, str]:
        return {c.name: c.kind for c in self.columns}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: {"columns": [{name, kind, dtype, nullable, categories}, ...]}."""
        return {"columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        return cls([ColumnInfo(**c) for c in data.get("columns", [])])

    # -- predict-time check -------------------------------------------------------------------

    def validate(self, df: pd.DataFrame) -> pd.DataFrame:
        """`df` reduced to the training columns, in training order, with training-compatible dtypes.

        Extra columns are dropped; unseen categories pass through (the encoders handle them).
        Raises SchemaError for no rows, missing columns, or values that do not fit a column's kind.
        """
        if not isinstance(df, pd.DataFrame):
            try:
                df = pd.DataFrame(df)
            except (ValueError, TypeError) as exc:
                raise SchemaError(f"expected a table of rows to predict on, got {type(df).__name__}: {exc}") from None
        if not all(isinstance(c, str) for c in df.columns):
            df = df.rename(columns=str)
        if len(df) == 0:
            raise SchemaError(f"no rows to predict on; send rows with the columns {_names(self.feature_names)}")
        absent = [name for name in self.feature_names if name not in df.columns]
        if absent:
            extras = [str(c) for c in df.columns if c not in set(self.feature_names)]
            hints = []
            for name in absent:
                hint = did_you_mean(name, extras)
                if hint:
                    hints.append(f"{hint.removeprefix('; did you mean ').removesuffix('?')} for '{name}'")
            suffix = f"; did you mean {', '.join(hints)}?" if hints else ""
            raise SchemaError(f"missing column(s) {_names(absent)} that the model was trained on{suffix}")
        out = {}
        for info in self.columns:
            out[info.name] = _coerce(df[info.name], info)
        return pd.DataFrame(out, index=df.index)


def _names(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _blank_to_na(s: pd.Series) -> pd.Series:
    values = s.astype(object)
    blank = values.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    return values.where(~blank, None).map(lambda v: v.strip() if isinstance(v, str) else v)


def _bad_value(original: pd.Series, converted: pd.Series, info: ColumnInfo, kind_word: str) -> None:
    bad = original.notna() & converted.isna()
    if bad.any():
        row = bad.idxmax()
        raise SchemaError(
            f"column '{info.name}' should be {kind_word} as in training ({info.dtype}) but has value "
            f"{original[row]!r} (row {row!r}, {int(bad.sum())} such value(s)); fix the value or leave it empty"
        )


def _coerce(s: pd.Series, info: ColumnInfo) -> pd.Series:
    if info.kind == "sequence":  # lists, arrays or their JSON text: read by the sequence transformers
        return s
    if info.kind == "numeric":
        return _to_numeric(s, info)
    if info.kind == "datetime":
        return _to_datetime(s, info)
    if info.kind == "boolean":
        return _to_boolean(s, info)
    return _to_category(s, info)


def _to_numeric(s: pd.Series, info: ColumnInfo) -> pd.Series:
    if pd.api.types.is_bool_dtype(s.dtype):
        s = s.astype(float)
    elif pd.api.types.is_timedelta64_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        pass
    else:
        original = _blank_to_na(s)
        converted = pd.to_numeric(original, errors="coerce")
        _bad_value(original, converted, info, "numeric")
        s = converted
    target = info.dtype
    if target.startswith(("int", "uint", "Int", "UInt")) and pd.api.types.is_numeric_dtype(s.dtype):
        values = s.to_numpy(dtype=float, na_value=np.nan)
        if not np.isnan(values).any() and np.all(np.mod(values, 1) == 0):
            return s.astype(target)
        return s.astype("float64")
    if target.startswith("float") and pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype(target)
    return s


def _to_datetime(s: pd.Series, info: ColumnInfo) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s
    original = _blank_to_na(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            converted = pd.to_datetime(original, errors="coerce", format="mixed")
        except (ValueError, TypeError):  # mixed time zones
            converted = pd.to_datetime(original, errors="coerce", format="mixed", utc=True)
    if not pd.api.types.is_datetime64_any_dtype(converted.dtype):
        converted = pd.to_datetime(original, errors="coerce", format="mixed", utc=True)
    _bad_value(original, converted, info, "a date")
    return converted


def _to_boolean(s: pd.Series, info: ColumnInfo) -> pd.Series:
    if info.dtype == "bool" or info.dtype == "boolean":
        if pd.api.types.is_bool_dtype(s.dtype):
            return s
        text = pd.Series(as_text(s), index=s.index)

        def one(v: Any) -> Any:
            if not isinstance(v, str):
                return v
            low = v.strip().lower()
            return True if low in TRUE_TOKENS else False if low in FALSE_TOKENS else v

        mapped = text.map(one)
        if mapped.map(lambda v: isinstance(v, bool)).all():
            return mapped.astype(bool)
        return mapped.astype(object)
    return _to_category(s, info)


def _to_category(s: pd.Series, info: ColumnInfo) -> pd.Series:
    if info.dtype.startswith(("int", "uint", "float", "Int", "UInt", "Float")):
        converted = pd.to_numeric(_blank_to_na(s), errors="coerce")
        if (converted.notna() == s.notna()).all():
            return converted
        return pd.Series(as_text(s), index=s.index, dtype=object)
    text = pd.Series(as_text(s), index=s.index, dtype=object)
    if info.dtype == "str":
        return text.astype("str")
    return text
