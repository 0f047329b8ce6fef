"""The target column: which task it implies, and whether the data can train a model at all."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from forgeml.errors import DataError, SpecError, did_you_mean

log = logging.getLogger(__name__)

TASKS = ("auto", "classification", "regression")


def resolve_task(y: pd.Series, task: str) -> str:
    """'classification' or 'regression' for target values `y` (missing values ignored).

    auto: strings, booleans and categories are classes; integer-valued numbers are classes when they
    take few distinct values (at most 2, at most 10 covering no more than half the rows, or at most
    20 covering at most 5% of the rows); other numbers are regression.
    """
    if task not in TASKS:
        raise SpecError(f"unknown task '{task}'{did_you_mean(task, TASKS)} (known: {', '.join(TASKS)})")
    if task != "auto":
        return task
    values = y.dropna()
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            raise DataError(
                f"target '{y.name}' holds dates; predict a number or a class instead (e.g. days until the date)"
            )
        numbers = _numeric_strings(values)
        if numbers is None or pd.api.types.is_bool_dtype(values.dtype):
            return "classification"
        values = numbers
    n_distinct = int(values.nunique())
    n_rows = max(len(values), 1)
    as_float = values.to_numpy(dtype=float, na_value=np.nan)
    integer_valued = bool(np.all(np.isfinite(as_float)) and np.all(np.equal(np.mod(as_float, 1), 0)))
    few = n_distinct <= 2 or (n_distinct <= 10 and n_distinct <= 0.5 * n_rows) or (
        n_distinct <= 20 and n_distinct <= 0.05 * n_rows
    )
    resolved = "classification" if integer_valued and few else "regression"
    log.info(
        "target '%s': %d distinct %s values -> %s (set task explicitly to override)",
        y.name, n_distinct, "integer" if integer_valued else "numeric", resolved,
    )
    return resolved


def _numeric_strings(values: pd.Series) -> pd.Series | None:
    """The values as numbers when every one of them is a number written as text, else None."""
    if len(values) == 0:
        return None
    converted = pd.to_numeric(values.astype(str).str.strip(), errors="coerce")
    return converted if converted.notna().all() else None


def drop_unlabelled(df: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    """Rows whose target is missing (NaN, None or blank text) removed: (kept rows, number dropped).

    The index is kept as is, so dropped rows can be traced back to the source.
    """
    missing = _missing_target(df[target])
    dropped = int(missing.sum())
    if dropped:
        log.warning("dropping %d row(s) with no value in target '%s'", dropped, target)
        return df.loc[~missing].copy(), dropped
    return df, 0


def _missing_target(y: pd.Series) -> pd.Series:
    missing = y.isna()
    if not pd.api.types.is_numeric_dtype(y.dtype) and not pd.api.types.is_bool_dtype(y.dtype):
        text = y.astype(object).where(~missing, None)
        missing = missing | text.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    return missing


def check_training_data(df: pd.DataFrame, target: str | None, task: str, *, min_rows: int = 10) -> str:
    """Check that `df` can train a `task` model for `target`; return the resolved task.

    Raises DataError for a missing or unknown target, an empty target, too few labelled rows,
    a single class, or a non-numeric regression target.
    """
    columns = [str(c) for c in df.columns]
    if not target:
        raise DataError(f"no target column given; pass --target NAME (columns: {_listing(columns)})")
    if target not in df.columns:
        raise DataError(
            f"target column '{target}' not found in the data{did_you_mean(target, columns)} "
            f"(columns: {_listing(columns)})"
        )
    if df.shape[1] < 2:
        raise DataError(f"the data has only the target column '{target}'; add feature columns to learn from")
    y = df[target]
    missing = _missing_target(y)
    labelled = int((~missing).sum())
    if labelled == 0:
        raise DataError(
            f"target column '{target}' is empty in all {len(df)} rows; check the column name or fill in the values"
        )
    if labelled < min_rows:
        raise DataError(
            f"only {labelled} row(s) have a value in target '{target}'; at least {min_rows} are needed to train "
            "and evaluate a model"
        )
    y = y[~missing]
    resolved = resolve_task(y, task)
    if resolved == "classification":
        classes = y.astype(object).unique()
        if len(classes) < 2:
            raise DataError(
                f"target '{target}' has a single class ({classes[0]!r}) in all {labelled} labelled rows; "
                "classification needs at least two classes"
            )
    else:
        if pd.api.types.is_bool_dtype(y.dtype):
            raise DataError(f"target '{target}' is true/false, which is not a number; use task: classification")
        if not pd.api.types.is_numeric_dtype(y.dtype):
            bad = pd.to_numeric(y.astype(str).str.strip(), errors="coerce").isna()
            if bad.any():
                example = y[bad].iloc[0]
                raise DataError(
                    f"target '{target}' has non-numeric values (e.g. {example!r}) but the task is regression; "
                    "use task: classification, or clean the column"
                )
        if y.nunique() < 2:
            raise DataError(f"target '{target}' has the same value in every row; there is nothing to learn")
    return resolved


def _listing(columns: list[str], limit: int = 10) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")
