"""Numeric sequences for the RNN and Transformer: long tables or list columns into padded arrays.

Both readers return (X (N, T, F) float32, lengths (N,) int64, ids (N,)): sequence i has valid steps
X[i, :lengths[i]], the rest is `pad_value`. With max_length, longer sequences keep their most recent
max_length steps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from forgeml.errors import DataError, did_you_mean


def _pad(rows: list[np.ndarray], max_length: int | None, pad_value: float) -> tuple[np.ndarray, np.ndarray]:
    """(T_i, F) arrays -> (N, T, F) float32 padded at the end, lengths (N,)."""
    if max_length is not None:
        if max_length < 1:
            raise DataError(f"max_length must be at least 1 (got {max_length})")
        rows = [r[-max_length:] for r in rows]
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    T = max(int(lengths.max(initial=0)), 1)
    F = rows[0].shape[1] if rows else 1
    X = np.full((len(rows), T, F), pad_value, dtype=np.float32)
    for i, r in enumerate(rows):
        X[i, : len(r)] = r
    return X, lengths


def sequences_from_long(
    df: pd.DataFrame,
    id_column: str,
    time_column: str,
    value_columns: str | Sequence[str],
    *,
    max_length: int | None = None,
    pad_value: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per (id, time) -> one padded sequence per id, steps in time order, ids in sorted order.

    Returns (X (N, T, F) float32, lengths (N,) int64, ids (N,)); F = len(value_columns).
    """
    values = [value_columns] if isinstance(value_columns, str) else list(value_columns)
    if not values:
        raise DataError("no value columns given; name the numeric columns that make up each step")
    for name, what in [(id_column, "id column"), (time_column, "time column"), *((v, "value column") for v in values)]:
        if name not in df.columns:
            raise DataError(f"{what} '{name}' not found{did_you_mean(name, df.columns)} (columns: {', '.join(map(str, df.columns[:20]))})")
    if len(df) == 0:
        raise DataError("the table of sequences has no rows")
    for v in values:
        if not pd.api.types.is_numeric_dtype(df[v]):
            raise DataError(f"value column '{v}' is not numeric (dtype {df[v].dtype}); sequence models read numbers")
    if df[id_column].isna().any():
        raise DataError(f"id column '{id_column}' has {int(df[id_column].isna().sum())} missing values; every step needs its sequence id")
    ordered = df.sort_values([id_column, time_column], kind="stable")
    ids, rows = [], []
    for key, group in ordered.groupby(id_column, sort=True):
        ids.append(key)
        rows.append(group[values].to_numpy(dtype=np.float32))
    X, lengths = _pad(rows, max_length, pad_value)
    return X, lengths, np.asarray(ids)


def _steps(cell: Any, where: Any) -> np.ndarray:
    """One cell (a list of numbers, a list of lists, or their JSON text) -> (T, F) float32."""
    if isinstance(cell, str):
        try:
            cell = json.loads(cell)
        except ValueError:
            raise DataError(f"sequence at {where!r} is text that is not a JSON list: {cell[:40]!r}") from None
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        cell = []
    try:
        array = np.asarray(cell, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"sequence at {where!r} is not a list of numbers (or of equal-length lists of numbers)") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DataError(f"sequence at {where!r} has {array.ndim} dimensions; expected steps or steps x features")
    return array


def sequences_from_lists(
    series: pd.Series | Sequence[Any], *, max_length: int | None = None, pad_value: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column whose cells are sequences -> (X (N, T, F) float32, lengths (N,) int64, ids (N,) = the index).

    A cell is a list of numbers (F = 1), a list of equal-length lists (F features per step), or the
    JSON text of either (as read from CSV). Missing cells are empty sequences.
    """
    series = series if isinstance(series, pd.Series) else pd.Series(list(series))
    if len(series) == 0:
        raise DataError("the sequence column is empty: no rows")
    rows = [_steps(cell, where) for where, cell in series.items()]
    widths = {r.shape[1] for r in rows if len(r)}
    if len(widths) > 1:
        raise DataError(f"sequences have different numbers of features per step ({sorted(widths)}); give every step the same")
    if not widths:
        raise DataError(f"all {len(rows)} sequences are empty")
    width = widths.pop()
    rows = [r if len(r) else np.zeros((0, width), dtype=np.float32) for r in rows]
    X, lengths = _pad(rows, max_length, pad_value)
    return X, lengths, series.index.to_numpy()


def is_sequence_column(values: pd.Series) -> bool:
    """Whether (non-missing) values are sequences: lists/arrays of numbers, or JSON text of such lists."""
    sample = values.iloc[:200]
    if len(sample) == 0:
        return False
    if all(isinstance(v, (list, tuple, np.ndarray)) for v in sample):
        return True
    if not all(isinstance(v, str) and v.lstrip().startswith("[") for v in sample):
        return False
    try:
        for v in sample:
            _steps(v, None)
    except DataError:
        return False
    return True


def _cells(X: Any) -> pd.DataFrame:
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object).reshape(len(X), -1))


class SequenceCells(TransformerMixin, BaseEstimator):
    """Sequence columns -> an object array (N, columns) of (T, F) float32 arrays, for the RNN/Transformer.

    Cells may be lists, arrays or their JSON text; a missing cell is an empty sequence. The networks'
    input encoder pads them (see forgeml.models.neural_inputs)."""

    def fit(self, X: Any, y: Any = None) -> SequenceCells:
        self.n_features_in_ = _cells(X).shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = _cells(X)
        out = np.empty(frame.shape, dtype=object)
        for j, column in enumerate(frame.columns):
            for i, (where, cell) in enumerate(frame[column].items()):
                out[i, j] = _steps(cell, where)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = list(input_features) if input_features is not None else [f"x{j}" for j in range(self.n_features_in_)]
        return np.asarray(names, dtype=object)


SUMMARY = ("length", "mean", "std", "min", "max", "first", "last", "slope")


class SequenceSummary(TransformerMixin, BaseEstimator):
    """Sequence columns -> per-sequence statistics (length, mean, std, min, max, first, last and slope per
    step, of each step feature): what tabular models read from a column of sequences. Empty sequences
    give missing values (imputed downstream)."""

    def fit(self, X: Any, y: Any = None) -> SequenceSummary:
        frame = _cells(X)
        self.n_features_in_ = frame.shape[1]
        self.widths_ = [max((_steps(c, w).shape[1] for w, c in frame[col].items()), default=1) for col in frame.columns]
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = _cells(X)
        blocks = []
        for column, width in zip(frame.columns, self.widths_, strict=True):
            block = np.full((len(frame), len(SUMMARY) * width), np.nan, dtype=np.float64)
            for i, (where, cell) in enumerate(frame[column].items()):
                steps = _steps(cell, where).astype(np.float64)
                if steps.shape[1] != width:
                    raise DataError(f"sequence at {where!r} has {steps.shape[1]} features per step; training had {width}")
                if not len(steps):
                    block[i, :width] = 0.0
                    continue
                with np.errstate(all="ignore"):
                    stats = [np.full(width, len(steps)), np.nanmean(steps, 0), np.nanstd(steps, 0), np.nanmin(steps, 0),
                             np.nanmax(steps, 0), steps[0], steps[-1], (steps[-1] - steps[0]) / max(len(steps) - 1, 1)]
                block[i] = np.concatenate(stats)
            blocks.append(block)
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = list(input_features) if input_features is not None else [f"x{j}" for j in range(self.n_features_in_)]
        return np.asarray([f"{name}_{stat}{'' if width == 1 else f'_{k}'}" for name, width in zip(names, self.widths_, strict=True)
                           for stat in SUMMARY for k in range(width)], dtype=object)


def collapse_long(df: pd.DataFrame, id_column: str, time_column: str, target: str | None = None) -> pd.DataFrame:
    """A long table (one row per id and time step) -> one row per sequence, ids in sorted order.

    Numeric columns become list columns (the steps in time order); other columns must hold one value
    per sequence (static attributes) and keep it; so must the target: one label per sequence. The id
    column stays as a column. DataError names any column that breaks these rules.
    """
    for name, what in ((id_column, "sequence id column"), (time_column, "sequence time column")):
        if name not in df.columns:
            raise DataError(f"{what} '{name}' not found{did_you_mean(name, df.columns)}")
    if df[id_column].isna().any():
        raise DataError(f"sequence id column '{id_column}' has {int(df[id_column].isna().sum())} missing values; "
                        "every step needs its sequence id")
    ordered = df.sort_values([id_column, time_column], kind="stable")
    groups = ordered.groupby(id_column, sort=True)
    out = pd.DataFrame({id_column: list(groups.groups)})
    for column in ordered.columns:
        if column in (id_column, time_column):
            continue
        varying = groups[column].nunique(dropna=False) > 1
        numeric = pd.api.types.is_numeric_dtype(ordered[column]) and not pd.api.types.is_bool_dtype(ordered[column])
        if column == target or not numeric:
            if varying.any():
                example = varying[varying].index[0]
                what = "the target" if column == target else f"column '{column}'"
                fix = "one label per sequence is needed" if column == target else \
                    "a non-numeric column must hold one value per sequence; leave it out with ignore_columns"
                raise DataError(f"{what} changes within sequence {example!r}; {fix}")
            out[column] = groups[column].first().to_numpy()
        else:
            out[column] = [values.tolist() for _, values in groups[column]]
    return out
