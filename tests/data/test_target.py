"""Task inference and the checks that stop training on data that cannot train a model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forgeml.data.target import check_training_data, drop_unlabelled, resolve_task
from forgeml.errors import DataError, SpecError


@pytest.mark.parametrize(
    "values,task",
    [
        (["a", "b"] * 50, "classification"),
        ([True, False] * 50, "classification"),
        (pd.Categorical(["x", "y"] * 50), "classification"),
        ([0, 1] * 50, "classification"),
        (list(range(10)) * 30, "classification"),  # 10 classes, 300 rows
        ([1, 2, 3, 4, 5] * 6, "classification"),  # ratings on a small table
        (np.arange(300) % 50, "regression"),  # 50 distinct integers
        (np.linspace(0, 1, 100), "regression"),
        ([1.0, 2.0, 3.0] * 40, "classification"),  # integer-valued floats with few values
        ([0.5, 1.5, 2.5] * 40, "regression"),
        (["1.5", "2.25", "3.0", "4.75"] * 25, "regression"),  # numbers written as text
    ],
)
def test_resolve_task_auto(values, task):
    assert resolve_task(pd.Series(values, name="y"), "auto") == task


def test_resolve_task_on_bundled(iris, diabetes):
    assert resolve_task(iris["target"], "auto") == "classification"
    assert resolve_task(diabetes["target"], "auto") == "regression"


def test_explicit_task_wins_and_unknown_task_rejected():
    assert resolve_task(pd.Series([0.5, 1.5]), "classification") == "classification"
    with pytest.raises(SpecError, match="unknown task 'clasification'; did you mean 'classification'"):
        resolve_task(pd.Series([1, 2]), "clasification")


def test_drop_unlabelled_counts_blank_text():
    df = pd.DataFrame({"x": range(5), "y": ["a", None, "  ", "b", np.nan]})
    kept, dropped = drop_unlabelled(df, "y")
    assert dropped == 3 and kept["x"].tolist() == [0, 3]
    same, none = drop_unlabelled(kept, "y")
    assert none == 0 and same is kept


def test_check_passes_and_resolves(iris, diabetes):
    assert check_training_data(iris, "target", "auto") == "classification"
    assert check_training_data(diabetes, "target", "auto") == "regression"


def test_no_target_lists_columns(iris):
    with pytest.raises(DataError, match=r"no target column given; pass --target NAME \(columns: sepal length"):
        check_training_data(iris, None, "auto")


def test_absent_target_suggests_close_name():
    df = pd.DataFrame({"Price": range(20), "rooms": range(20)})
    with pytest.raises(DataError, match=r"target column 'price' not found in the data; did you mean 'Price'\? \(columns: Price, rooms\)"):
        check_training_data(df, "price", "auto")


def test_empty_target():
    df = pd.DataFrame({"x": range(20), "y": [None] * 20})
    with pytest.raises(DataError, match="target column 'y' is empty in all 20 rows"):
        check_training_data(df, "y", "auto")


def test_single_class():
    df = pd.DataFrame({"x": range(20), "y": ["spam"] * 19 + [None]})
    with pytest.raises(DataError, match=r"single class \('spam'\).*needs at least two classes"):
        check_training_data(df, "y", "auto")


def test_too_few_rows():
    df = pd.DataFrame({"x": range(8), "y": [0, 1] * 4})
    with pytest.raises(DataError, match="only 8 row.* at least 10"):
        check_training_data(df, "y", "auto")
    assert check_training_data(df, "y", "auto", min_rows=5) == "classification"


def test_regression_on_text_target_names_fix():
    df = pd.DataFrame({"x": range(20), "y": ["cheap", "dear"] * 10})
    with pytest.raises(DataError, match=r"non-numeric values \(e.g. 'cheap'\).*use task: classification"):
        check_training_data(df, "y", "regression")


def test_only_target_column():
    with pytest.raises(DataError, match="add feature columns"):
        check_training_data(pd.DataFrame({"y": range(20)}), "y", "auto")
