"""Train/validation/test splits and CV folds: reproducible, stratified, grouped and time-ordered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forgeml.data.split import cv_folds, split_frame
from forgeml.errors import DataError
from forgeml.spec import SplitSpec


@pytest.fixture
def grouped(messy) -> pd.DataFrame:
    df = messy.copy()
    df["household"] = np.random.default_rng(3).integers(0, 60, len(df))
    return df


def _index_sets(split):
    return [set(part.index) for part in (split.train, split.validation, split.test)]


def test_default_fractions_and_disjoint_cover(iris):
    split = split_frame(iris, "target", SplitSpec(), "classification", seed=1)
    assert split.sizes == {"train": 106, "validation": 22, "test": 22}
    train, val, test = _index_sets(split)
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(iris.index)


def test_same_seed_same_rows_other_seed_other_rows(messy):
    a = split_frame(messy, "churn", SplitSpec(), "classification", seed=7)
    b = split_frame(messy, "churn", SplitSpec(), "classification", seed=7)
    c = split_frame(messy, "churn", SplitSpec(), "classification", seed=8)
    assert _index_sets(a) == _index_sets(b)
    assert _index_sets(a) != _index_sets(c)


def test_stratification_preserves_class_ratios(messy):
    split = split_frame(messy, "churn", SplitSpec(), "classification", seed=0)
    overall = messy["churn"].value_counts(normalize=True)
    for part in (split.train, split.validation, split.test):
        ratios = part["churn"].value_counts(normalize=True)
        assert (ratios - overall).abs().max() < 0.02


def test_stratified_keeps_rare_class_in_train(iris):
    df = pd.concat([iris, iris.iloc[[0]].assign(target="lonely")], ignore_index=True)
    split = split_frame(df, "target", SplitSpec(strategy="stratified"), "classification", seed=0)
    assert "lonely" in set(split.train["target"])  # a one-row class is kept for training
    assert sum(split.sizes.values()) == len(df)


def test_groups_never_cross_splits(grouped):
    spec = SplitSpec(group_column="household")
    split = split_frame(grouped, "churn", spec, "classification", seed=0)
    groups = [set(part["household"]) for part in (split.train, split.validation, split.test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert abs(len(split.test) / len(grouped) - 0.15) < 0.05
    assert abs(len(split.validation) / len(grouped) - 0.15) < 0.05


def test_time_split_orders_past_to_future(messy):
    spec = SplitSpec(time_column="signup")
    split = split_frame(messy, "churn", spec, "classification", seed=0)
    dates = [pd.to_datetime(part["signup"]) for part in (split.train, split.validation, split.test)]
    assert dates[0].max() <= dates[1].min() and dates[1].max() <= dates[2].min()
    assert dates[0].isna().sum() == messy["signup"].isna().sum()  # undated rows train
    assert split.sizes == {"train": 280, "validation": 60, "test": 60}


def test_zero_fractions_give_empty_parts(iris):
    split = split_frame(iris, "target", SplitSpec(train=0.8, validation=0.0, test=0.2), "classification", seed=0)
    assert split.sizes == {"train": 120, "validation": 0, "test": 30}


@pytest.mark.parametrize("n", [3, 4, 6])
def test_tiny_data_fills_every_split(n):
    df = pd.DataFrame({"x": range(n), "y": ["a", "b", "c"][:n] * (n // 3) + ["a"] * (n % 3)})
    split = split_frame(df, "y", SplitSpec(), "classification", seed=0)
    assert all(size >= 1 for size in split.sizes.values())


def test_too_tiny_raises():
    with pytest.raises(DataError, match="cannot split 2 row"):
        split_frame(pd.DataFrame({"x": [1, 2], "y": [0, 1]}), "y", SplitSpec(), "regression", seed=0)


def test_unknown_group_and_time_columns_suggest(grouped):
    with pytest.raises(DataError, match="split.group_column 'Household' .* did you mean 'household'"):
        split_frame(grouped, "churn", SplitSpec(group_column="Household"), "classification", seed=0)
    with pytest.raises(DataError, match="split.time_column 'signups' .* did you mean 'signup'"):
        cv_folds(grouped, "churn", SplitSpec(time_column="signups"), "classification", seed=0)


def test_too_few_groups():
    df = pd.DataFrame({"x": range(10), "g": [1] * 5 + [2] * 5, "y": range(10)})
    with pytest.raises(DataError, match="has 2 distinct value"):
        split_frame(df, "y", SplitSpec(group_column="g"), "regression", seed=0)


def test_cv_folds_stratified_and_reproducible(iris):
    folds = cv_folds(iris, "target", SplitSpec(), "classification", seed=0)
    assert len(folds) == 5
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0
        assert iris["target"].iloc[test].value_counts().tolist() == [10, 10, 10]
    again = cv_folds(iris, "target", SplitSpec(), "classification", seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests) == list(range(len(iris)))


def test_cv_folds_group_time_and_plain(grouped, diabetes):
    for train, test in cv_folds(grouped, "churn", SplitSpec(group_column="household"), "classification", 0, n_folds=4):
        assert not set(grouped["household"].iloc[train]) & set(grouped["household"].iloc[test])
    time_folds = cv_folds(grouped, "churn", SplitSpec(time_column="signup"), "classification", 0, n_folds=3)
    times = pd.to_datetime(grouped["signup"])
    for train, test in time_folds:
        assert times.iloc[train].max() <= times.iloc[test].min()
    plain = cv_folds(diabetes, "target", SplitSpec(folds=3), "regression", 0)
    assert len(plain) == 3 and sum(len(t) for _, t in plain) == len(diabetes)


def test_cv_folds_too_many():
    df = pd.DataFrame({"x": range(4), "y": [0.1, 0.2, 0.3, 0.4]})
    with pytest.raises(DataError, match="cannot make 5 folds from 4 rows"):
        cv_folds(df, "y", SplitSpec(), "regression", 0)
