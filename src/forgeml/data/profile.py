"""What a table holds: the kind of each column, and the problems worth a warning before training.

`infer_kinds` decides how each column is prepared (numeric, categorical, boolean, datetime, text,
identifier); `profile_table` adds missing values, constant and duplicate columns, class balance and
single-column leakage checks, with human-readable warnings.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forgeml.data.target import _missing_target, resolve_task
from forgeml.errors import DataError

log = logging.getLogger(__name__)

KINDS = ("numeric", "categorical", "boolean", "datetime", "text", "image", "sequence", "identifier")
TRUE_TOKENS = frozenset({"true", "t", "yes", "y", "1", "1.0", "on"})
FALSE_TOKENS = frozenset({"false", "f", "no", "n", "0", "0.0", "off"})
_ID_NAME = re.compile(r"(?i:^id$|[_\-\s.]id$|^uuid$|[_\-\s.]uuid$)|[a-z0-9]I[dD]$")  # id, user_id, userId
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_SAMPLE = 2000


def infer_kinds(df: pd.DataFrame, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The kind of every column of `df`, in column order; `overrides` (column -> kind) win.

    Overrides naming a column that is not in `df` are ignored (logged), so the spec's
    `column_kinds` can be passed for any subset of the data.
    """
    overrides = dict(overrides or {})
    for column, kind in overrides.items():
        if kind not in KINDS:
            raise DataError(f"unknown kind '{kind}' for column '{column}' (known: {', '.join(KINDS)})")
    unknown = [c for c in overrides if c not in df.columns]
    if unknown:
        log.info("column kind overrides for absent column(s) %s ignored", ", ".join(unknown))
    return {str(c): overrides.get(c) or _infer_kind(df[c]) for c in df.columns}


def _infer_kind(s: pd.Series) -> str:
    name = str(s.name)
    values = s.dropna()
    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "numeric"
    if pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_integer_dtype(dtype) and _looks_like_id_numbers(values, name, len(s)):
            return "identifier"
        return "numeric"
    if len(values) == 0:
        return "categorical"
    # From here on: object, str or category values.
    if isinstance(dtype, pd.CategoricalDtype):  # the user chose categories: keep them, unless a yes/no pair
        levels = {str(v).strip() for v in values.unique()}
        return "boolean" if len({v.lower() for v in levels}) <= 2 and _is_boolean_pair(levels) else "categorical"
    from forgeml.data.sequences import is_sequence_column

    if is_sequence_column(values):  # lists of numbers (Parquet, JSON) or their JSON text (CSV)
        return "sequence"
    if values.dtype == object:  # python objects: maybe bools or numbers that pandas did not type
        def every(test: Any) -> bool:  # a cheap look at a sample first, then all values
            return bool(values.iloc[:_SAMPLE].map(test).all() and values.map(test).all())

        if every(lambda v: isinstance(v, (bool, np.bool_))):
            return "boolean"
        if every(lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)):
            return "numeric"
    text = values.astype(str).str.strip()
    distinct = text.unique()
    if len(distinct) <= 8 and 1 <= len({v.lower() for v in distinct}) <= 2 and _is_boolean_pair(distinct):
        return "boolean"
    if _numeric_text(text):
        return "numeric"
    if _date_text(pd.Series(distinct[:_SAMPLE])):
        return "datetime"
    from forgeml.data.images import looks_like_image_paths

    if looks_like_image_paths(text.iloc[:_SAMPLE]) and looks_like_image_paths(text):
        return "image"
    unique_ratio = len(distinct) / len(text)
    lengths = text.str.len()
    if lengths.mean() > 30 and unique_ratio >= 0.3 and _distinct_words(text) >= 30:
        return "text"
    if _ID_NAME.search(name) and unique_ratio >= 0.95:
        return "identifier"
    if unique_ratio >= 0.95 and len(text) >= 20 and text.str.contains(r"\s", regex=True).mean() <= 0.5:
        return "identifier"
    return "categorical"


def _looks_like_id_numbers(values: pd.Series, name: str, n_rows: int) -> bool:
    if len(values) < 2 or values.nunique() != n_rows:
        return False
    if _ID_NAME.search(name):
        return True
    return n_rows >= 20 and (values.is_monotonic_increasing or values.is_monotonic_decreasing)


def _is_boolean_pair(distinct: Any) -> bool:
    lowered = {str(v).lower() for v in distinct}
    return any(t in TRUE_TOKENS for t in lowered) and any(f in FALSE_TOKENS for f in lowered) or (
        len(lowered) == 1 and lowered <= (TRUE_TOKENS | FALSE_TOKENS) - {"1", "0", "1.0", "0.0"}
    )


def _numeric_text(text: pd.Series) -> bool:
    """Numbers written as text (JSON strings, quoted CSV), without leading zeros that codes keep."""
    sample = text.iloc[:_SAMPLE]
    if not sample.str.match(_NUMBER).all() or sample.str.match(r"^\s*[+-]?0\d").any():
        return False
    return len(text) <= _SAMPLE or bool(text.str.match(_NUMBER).all() and not text.str.match(r"^\s*[+-]?0\d").any())


def _date_text(distinct: pd.Series) -> bool:
    """True when >= 90% of the (distinct, sampled) values parse as dates or times."""
    plausible = distinct.str.len().between(6, 40) & distinct.str.contains(r"\d") & ~distinct.str.match(_NUMBER)
    if plausible.mean() < 0.9:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(distinct, errors="coerce", format="mixed")
        except (ValueError, TypeError, OverflowError):
            return False
    return bool(parsed.notna().mean() >= 0.9)


def _distinct_words(text: pd.Series) -> int:
    sample = text.iloc[:500]
    words: set[str] = set()
    for value in sample:
        words.update(value.lower().split())
        if len(words) >= 1000:
            break
    return len(words)


# ----------------------------------------------------------------------------- profile


@dataclass
class Profile:
    """A summary of a table for the report and the CLI: per-column kinds and data-quality findings."""

    rows: int
    columns: int
    kinds: dict[str, str]
    missing: dict[str, float] = field(default_factory=dict)
    constant_columns: list[str] = field(default_factory=list)
    duplicate_columns: list[tuple[str, str]] = field(default_factory=list)
    duplicate_rows: int = 0
    high_cardinality: dict[str, int] = field(default_factory=dict)
    target: str | None = None
    task: str | None = None
    class_balance: dict[str, float] = field(default_factory=dict)
    target_stats: dict[str, float] = field(default_factory=dict)
    leakage: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        out = asdict(self)
        out["duplicate_columns"] = [list(pair) for pair in self.duplicate_columns]
        return out


def profile_table(
    df: pd.DataFrame,
    target: str | None = None,
    task: str = "auto",
    kinds: dict | None = None,
    high_cardinality_threshold: int = 20,
) -> Profile:
    """Profile `df` (rows x columns); with `target`, add task, class balance or target stats, and leakage.

    kinds: overrides for `infer_kinds`. The target must be a column of `df` when given.
    """
    if target is not None and target not in df.columns:
        from forgeml.errors import did_you_mean

        raise DataError(f"target column '{target}' not found in the data{did_you_mean(target, map(str, df.columns))}")
    all_kinds = infer_kinds(df, kinds)
    notes: list[str] = []
    profile = Profile(rows=int(len(df)), columns=int(df.shape[1]), kinds=all_kinds)
    profile.missing = {str(c): round(float(v), 4) for c, v in df.isna().mean().items()} if len(df) else {}
    feature_cols = [c for c in df.columns if c != target]

    for column in feature_cols:
        share = profile.missing.get(column, 0.0)
        if len(df) and share == 1.0:
            notes.append(f"column '{column}' is empty")
        elif share >= 0.5:
            notes.append(f"column '{column}' is {share:.0%} missing")
    for column in feature_cols:
        if _nunique(df[column]) <= 1 and profile.missing.get(column, 0.0) < 1.0:
            profile.constant_columns.append(column)
            notes.append(f"column '{column}' is constant")
    profile.duplicate_columns = _duplicate_columns(df[feature_cols])
    for a, b in profile.duplicate_columns:
        notes.append(f"column '{b}' duplicates column '{a}'")
    profile.duplicate_rows = _duplicate_rows(df)
    if profile.duplicate_rows:
        notes.append(f"{profile.duplicate_rows} row(s) are exact duplicates of another row")
    for column in feature_cols:
        kind = all_kinds[column]
        if kind == "categorical":
            levels = int(df[column].nunique())
            if levels > high_cardinality_threshold:
                profile.high_cardinality[column] = levels
                notes.append(f"column '{column}' has {levels} categories (high cardinality)")
        elif kind == "identifier":
            notes.append(f"column '{column}' looks like an identifier and is not used as a feature")

    if target is not None:
        _profile_target(df, target, task, all_kinds, profile, notes)
    profile.warnings = notes
    return profile


def _nunique(s: pd.Series) -> int:
    """Distinct non-missing values; unhashable cells are compared by their text."""
    try:
        return int(s.nunique())
    except TypeError:
        return int(s.astype(str).nunique())


def _duplicate_columns(df: pd.DataFrame) -> list[tuple[str, str]]:
    seen: dict[tuple, str] = {}
    pairs = []
    for column in df.columns:
        s = df[column]
        try:
            key = (str(s.dtype), pd.util.hash_pandas_object(s, index=False).to_numpy().tobytes())
        except TypeError:
            key = (str(s.dtype), pd.util.hash_pandas_object(s.astype(str), index=False).to_numpy().tobytes())
        if key in seen:
            pairs.append((seen[key], str(column)))
        else:
            seen[key] = str(column)
    return pairs


def _duplicate_rows(df: pd.DataFrame) -> int:
    try:
        return int(df.duplicated().sum())
    except TypeError:
        return int(df.astype(str).duplicated().sum())


def _profile_target(
    df: pd.DataFrame, target: str, task: str, kinds: dict[str, str], profile: Profile, notes: list[str]
) -> None:
    y_all = df[target]
    missing = _missing_target(y_all)
    if missing.any():
        notes.append(f"{int(missing.sum())} row(s) have no value in target '{target}' and will be dropped")
    y = y_all[~missing]
    profile.target = target
    if len(y) == 0:
        notes.append(f"target '{target}' is empty")
        return
    profile.task = resolve_task(y, task)
    if profile.task == "classification":
        shares = y.astype(str).value_counts(normalize=True)
        profile.class_balance = {str(k): round(float(v), 4) for k, v in shares.items()}
        if len(shares) == 1:
            notes.append(f"target '{target}' has a single class")
        for label, share in shares.items():
            if share < 0.05:
                notes.append(f"class '{label}' is rare ({share:.1%})")
    else:
        numbers = pd.to_numeric(y, errors="coerce").dropna()
        if len(numbers):
            profile.target_stats = {
                "mean": float(numbers.mean()),
                "std": float(numbers.std(ddof=0)),
                "min": float(numbers.min()),
                "max": float(numbers.max()),
            }
    profile.leakage = _leakage(df[~missing], target, profile.task, kinds)
    for item in profile.leakage:
        notes.append(
            f"column '{item['column']}' alone predicts '{target}' (score {item['score']:.2f}): possible leakage"
        )


# ----------------------------------------------------------------------------- leakage

LEAKAGE_THRESHOLD = 0.98
_LEAKAGE_ROWS = 5000


def _leakage(df: pd.DataFrame, target: str, task: str, kinds: dict[str, str], seed: int = 0) -> list[dict[str, Any]]:
    """Features that alone predict the target almost perfectly, out of fold: [{column, score}], best first.

    Numbers and dates go through a depth-4 decision tree, categories through a per-level lookup
    (majority class or mean); the score is balanced accuracy or R^2 (or the squared correlation).
    """
    if len(df) > _LEAKAGE_ROWS:
        df = df.sample(_LEAKAGE_ROWS, random_state=seed)
    if len(df) < 20:
        return []
    if task == "classification":
        # classes too small to appear in every fold cannot be predicted out of fold; leave them out
        counts = df[target].astype(str).value_counts()
        df = df[df[target].astype(str).isin(counts.index[counts >= 5])]
        codes, _ = pd.factorize(df[target].astype(str))
        y = codes.astype(float)
        counts = np.bincount(codes)
        if len(counts) < 2:
            return []
    else:
        y = pd.to_numeric(df[target], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(y)) or np.std(y) == 0:
            return []
    folds = _leakage_folds(y, task, seed)
    found = []
    for column in df.columns:
        kind = kinds.get(column)
        if column == target or kind not in ("numeric", "boolean", "categorical", "datetime"):
            continue
        try:
            score = _column_score(df[column], kind, y, task, folds)
        except (ValueError, TypeError) as exc:  # an odd column must not break profiling
            log.debug("leakage check skipped column %s: %s", column, exc)
            continue
        if score >= LEAKAGE_THRESHOLD:
            found.append({"column": str(column), "score": round(float(score), 4)})
    return sorted(found, key=lambda item: -item["score"])


def _leakage_folds(y: np.ndarray, task: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    if task == "classification" and np.bincount(y.astype(int)).min() >= 3:
        splitter = StratifiedKFold(3, shuffle=True, random_state=seed)
    else:
        splitter = KFold(3, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def _column_score(s: pd.Series, kind: str, y: np.ndarray, task: str, folds: list) -> float:
    from sklearn.metrics import balanced_accuracy_score, r2_score

    oof = np.empty(len(y))
    if kind in ("numeric", "datetime"):
        x = _as_number(s, kind)
        if np.isnan(x).all() or np.nanstd(x) == 0:
            return 0.0
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        tree_cls = DecisionTreeClassifier if task == "classification" else DecisionTreeRegressor
        for train, test in folds:
            tree = tree_cls(max_depth=4, random_state=0).fit(x[train, None], y[train])
            oof[test] = tree.predict(x[test, None])
    else:
        keys = s.astype(object).where(s.notna(), "__missing__").astype(str).to_numpy()
        for train, test in folds:
            oof[test] = _lookup_predict(keys[train], y[train], keys[test], task)
    if task == "classification":
        return float(balanced_accuracy_score(y, oof))
    score = float(r2_score(y, oof))
    if kind in ("numeric", "datetime"):
        x = _as_number(s, kind)
        ok = ~np.isnan(x)
        if ok.all() and np.std(x) > 0:
            score = max(score, float(np.corrcoef(x, y)[0, 1] ** 2))
    return score


def _as_number(s: pd.Series, kind: str) -> np.ndarray:
    if kind == "datetime":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(s, errors="coerce", format="mixed", utc=True)
        return ((parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(days=1)).to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.is_timedelta64_dtype(s.dtype):
        return s.dt.total_seconds().to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _lookup_predict(train_keys: np.ndarray, train_y: np.ndarray, test_keys: np.ndarray, task: str) -> np.ndarray:
    frame = pd.DataFrame({"key": train_keys, "y": train_y})
    if task == "classification":
        table = frame.groupby("key")["y"].agg(lambda v: v.value_counts().index[0])
        fallback = float(pd.Series(train_y).value_counts().index[0])
    else:
        table = frame.groupby("key")["y"].mean()
        fallback = float(np.mean(train_y))
    return pd.Series(test_keys).map(table).fillna(fallback).to_numpy(dtype=float)
