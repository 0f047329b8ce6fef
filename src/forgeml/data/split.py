"""Train / validation / test splits and cross-validation folds, reproducible from one seed.

Strategies: random, stratified (class ratios kept in every split;
a class with a single row stays in train), group (rows sharing a group value
stay together) and time (oldest rows train, newest rows test). `auto` picks time, then group, then
stratified for classification, then random. Every split whose fraction is above zero gets rows.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forgeml.errors import DataError, did_you_mean
from forgeml.spec import SplitSpec

log = logging.getLogger(__name__)


@dataclass
class Split:
    """Three row subsets of one frame (original index kept); validation/test are empty at fraction 0."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def split_frame(df: pd.DataFrame, target: str, spec: SplitSpec, task: str, seed: int) -> Split:
    """Split `df` (rows with a target) into train / validation / test by `spec`; same seed, same rows."""
    _check_column(df, spec.group_column, "group_column")
    _check_column(df, spec.time_column, "time_column")
    n = len(df)
    fractions = (spec.train, spec.validation, spec.test)
    sizes = _sizes(n, fractions)
    strategy = _strategy(df, target, spec, task)
    rng = np.random.default_rng(seed)
    if strategy == "time":
        order = _time_order(df[spec.time_column])
        parts = [order[: sizes[0]], order[sizes[0] : sizes[0] + sizes[1]], order[sizes[0] + sizes[1] :]]
    elif strategy == "group":
        parts = _group_parts(df[spec.group_column], sizes, rng)
    elif strategy == "stratified":
        parts = _stratified_parts(df[target], sizes, rng)
    else:
        perm = rng.permutation(n)
        cuts = np.cumsum(sizes)[:2]
        parts = [np.sort(part) for part in np.split(perm, cuts)]
    log.info("%s split of %d rows: train %d, validation %d, test %d", strategy, n, *(len(p) for p in parts))
    return Split(*(df.iloc[p] for p in parts))


def cv_folds(
    df: pd.DataFrame, target: str, spec: SplitSpec, task: str, seed: int, n_folds: int | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds over `df` as (train positions, test positions) pairs.

    StratifiedKFold for classification, GroupKFold with a group column, TimeSeriesSplit (in time
    order) with a time column, KFold otherwise; shuffled with `seed` where the splitter allows.
    With spec.repeats > 1 the folds are made again with seeds seed + 1, ... and appended: every row
    is then scored `repeats` times (out-of-fold predictions are averaged).
    """
    folds = _folds(df, target, spec, task, seed, n_folds)
    for r in range(1, spec.repeats):
        folds += _folds(df, target, spec, task, seed + r, n_folds)
    return folds


def _folds(
    df: pd.DataFrame, target: str, spec: SplitSpec, task: str, seed: int, n_folds: int | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, TimeSeriesSplit

    _check_column(df, spec.group_column, "group_column")
    _check_column(df, spec.time_column, "time_column")
    k = n_folds or spec.folds
    n = len(df)
    if k < 2:
        raise DataError(f"cross-validation needs at least 2 folds (got {k})")
    if n < k:
        raise DataError(f"cannot make {k} folds from {n} rows; use fewer folds or more data")
    strategy = _strategy(df, target, spec, task)
    positions = np.zeros((n, 1))
    if strategy == "time":
        order = _time_order(df[spec.time_column])
        return [(order[tr], order[te]) for tr, te in TimeSeriesSplit(k).split(order)]
    if strategy == "group":
        groups = df[spec.group_column].astype(str).to_numpy()
        n_groups = len(np.unique(groups))
        if n_groups < k:
            raise DataError(
                f"cannot make {k} folds from {n_groups} distinct values of group column '{spec.group_column}'; "
                "use fewer folds"
            )
        try:
            splitter = GroupKFold(k, shuffle=True, random_state=seed)
        except TypeError:  # scikit-learn < 1.6
            splitter = GroupKFold(k)
        return list(splitter.split(positions, groups=groups))
    if strategy == "stratified":
        y = df[target].astype(str).to_numpy()
        smallest = pd.Series(y).value_counts().min()
        if smallest >= k:
            return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(positions, y))
        log.warning(
            "a class of '%s' has only %d row(s), fewer than %d folds; folds are not stratified", target, smallest, k
        )
    return list(KFold(k, shuffle=True, random_state=seed).split(positions))


# ----------------------------------------------------------------------------- internals


def _check_column(df: pd.DataFrame, column: str | None, field: str) -> None:
    if column is not None and column not in df.columns:
        names = [str(c) for c in df.columns]
        raise DataError(
            f"split.{field} '{column}' is not a column of the data{did_you_mean(column, names)} "
            f"(columns: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''})"
        )


def _strategy(df: pd.DataFrame, target: str, spec: SplitSpec, task: str) -> str:
    strategy = spec.strategy
    if strategy == "auto":
        if spec.time_column:
            return "time"
        if spec.group_column:
            return "group"
        strategy = "stratified" if task == "classification" else "random"
    if strategy == "stratified":
        if target not in df.columns:
            hint = did_you_mean(target, map(str, df.columns))
            raise DataError(f"cannot stratify on target '{target}': not a column{hint}")
        counts = df[target].astype(str).value_counts()
        singles = counts.index[counts < 2].tolist()
        if singles:
            log.warning(
                "class(es) %s of '%s' have a single row; they stay in the training split",
                ", ".join(f"'{c}'" for c in singles[:5]), target,
            )
    return strategy


def _sizes(n: int, fractions: tuple[float, float, float]) -> list[int]:
    """Rows per split: rounded shares of n, at least one row for every split with a fraction above 0."""
    needed = sum(1 for f in fractions if f > 0)
    if n < needed:
        raise DataError(
            f"cannot split {n} row(s) into {needed} non-empty parts (train/validation/test fractions "
            f"{fractions[0]:g}/{fractions[1]:g}/{fractions[2]:g}); add rows or set validation/test to 0"
        )
    val = max(1, round(n * fractions[1])) if fractions[1] > 0 else 0
    test = max(1, round(n * fractions[2])) if fractions[2] > 0 else 0
    while n - val - test < 1:  # tiny data: give rows back to train from the larger held-out part
        if val >= test and val > 1:
            val -= 1
        elif test > 1:
            test -= 1
        else:
            break
    return [n - val - test, val, test]


def _time_order(times: pd.Series) -> np.ndarray:
    """Positions sorted oldest first (stable); unparseable or missing times come first, with a warning."""
    if pd.api.types.is_numeric_dtype(times.dtype) or pd.api.types.is_datetime64_any_dtype(times.dtype):
        keys = times
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            keys = pd.to_datetime(times, errors="coerce", format="mixed", utc=True)
    missing = int(keys.isna().sum())
    if missing:
        log.warning("%d row(s) have no usable time in '%s'; they go to the training split", missing, times.name)
    frame = pd.DataFrame({"key": keys.to_numpy(), "pos": np.arange(len(times))})
    return frame.sort_values("key", kind="stable", na_position="first")["pos"].to_numpy()


def _stratified_parts(y: pd.Series, sizes: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Per-class shuffles cut so every class keeps its share in each split (largest remainders)."""
    labels = y.astype(str).to_numpy()
    classes, inverse = np.unique(labels, return_inverse=True)
    members = [rng.permutation(np.flatnonzero(inverse == c)) for c in range(len(classes))]
    counts = np.array([len(m) for m in members])
    n = counts.sum()
    taken = np.zeros((len(classes), 3), dtype=int)
    for split in (2, 1):  # test, then validation, from what each class has left
        want = sizes[split]
        if want == 0:
            continue
        left = counts - taken.sum(axis=1)
        quota = counts * sizes[split] / n
        base = np.minimum(np.floor(quota).astype(int), np.maximum(left - 1, 0))
        order = np.lexsort((rng.random(len(classes)), -(quota - np.floor(quota))))
        need = want - base.sum()
        for relax in (1, 0):  # first keep one row of each class for train, then not
            for c in order:
                if need <= 0:
                    break
                if base[c] < left[c] - relax:
                    base[c] += 1
                    need -= 1
        taken[:, split] = base
    parts: list[list[int]] = [[], [], []]
    for c, rows in enumerate(members):
        t, v = taken[c, 2], taken[c, 1]
        parts[2] += list(rows[:t])
        parts[1] += list(rows[t : t + v])
        parts[0] += list(rows[t + v :])
    return [np.sort(np.asarray(p, dtype=int)) for p in parts]


def _group_parts(groups: pd.Series, sizes: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Whole groups (shuffled) dealt to test, then validation, until each is closest to its row target."""
    keys = groups.astype(object).where(groups.notna(), "__missing__").astype(str).to_numpy()
    uniques, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    needed = sum(1 for s in sizes if s > 0)
    if len(uniques) < needed:
        raise DataError(
            f"group column '{groups.name}' has {len(uniques)} distinct value(s); a group split into {needed} "
            "parts needs at least that many groups"
        )
    order = rng.permutation(len(uniques))
    assign = np.zeros(len(uniques), dtype=int)
    cursor = 0
    for split in (2, 1):
        if sizes[split] == 0:
            continue
        rows = 0
        while cursor < len(order):
            size = counts[order[cursor]]
            reserve = 1 + (1 if split == 2 and sizes[1] > 0 else 0)  # groups kept for the later splits
            no_closer = abs(rows + size - sizes[split]) >= abs(rows - sizes[split])
            if rows > 0 and (no_closer or len(order) - cursor <= reserve):
                break
            assign[order[cursor]] = split
            rows += size
            cursor += 1
    parts = [np.flatnonzero(assign[inverse] == s) for s in range(3)]
    if any(len(p) == 0 for p, s in zip(parts, sizes) if s > 0):
        raise DataError(
            f"could not give every split a group of '{groups.name}'; add groups or set validation/test to 0"
        )
    return parts
