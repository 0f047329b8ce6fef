"""Column kinds and table profiles on bundled datasets and a generated messy table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forgeml.data.profile import infer_kinds, profile_table
from forgeml.errors import DataError


def test_kinds_of_messy_table(messy):
    kinds = infer_kinds(messy)
    assert kinds == {
        "row_id": "identifier",
        "customer_id": "identifier",
        "age": "numeric",
        "income": "numeric",
        "plan": "categorical",
        "city": "categorical",
        "active": "boolean",
        "signup": "datetime",
        "review": "text",
        "score_text": "numeric",
        "mixed": "categorical",
        "churn": "categorical",
        "spend": "numeric",
    }


@pytest.mark.parametrize(
    "values,kind",
    [
        ([True, False, None, True], "boolean"),
        (["Yes", "No", "no", None], "boolean"),
        (["1", "0", "1", "0"], "boolean"),
        (["T", "F", "T", "T"], "boolean"),
        ([0, 1, 1, 0], "numeric"),
        (["02134", "10001", "02134", "94105"], "categorical"),
        (["2021-03-04", "2021/05/06", "March 7, 2021", None], "datetime"),
        (pd.to_datetime(["2021-01-01", "2022-01-01", None, "2023-01-01"]), "datetime"),
        (["12:30", "red", "blue", "green"], "categorical"),
        ([1.5, 2.5, None, 3.0], "numeric"),
        (["a", "b", "a", "c"], "categorical"),
        ([None, None, None, None], "categorical"),
    ],
)
def test_single_column_kinds(values, kind):
    assert infer_kinds(pd.DataFrame({"col": values}))["col"] == kind


def test_identifier_rules():
    n = 50
    df = pd.DataFrame(
        {
            "id": np.random.default_rng(0).permutation(n),  # named id, unique, not monotonic
            "OrderID": np.arange(n) * 7,
            "step": np.arange(n),  # unique and monotonic integer
            "count": np.random.default_rng(1).integers(0, 10, n),  # repeats: a number
            "paid": np.arange(n) % 2 + np.arange(n) * 0.5,  # float: never an identifier
            "code": [f"X{i:04d}" for i in range(n)],
        }
    )
    kinds = infer_kinds(df)
    assert kinds == {
        "id": "identifier",
        "OrderID": "identifier",
        "step": "identifier",
        "count": "numeric",
        "paid": "numeric",
        "code": "identifier",
    }
    # a short unique integer column without an id-like name is a number
    assert infer_kinds(pd.DataFrame({"age": [30, 40, 50]}))["age"] == "numeric"


def test_overrides_win_and_unknown_kind_is_rejected(messy):
    kinds = infer_kinds(messy, {"city": "text", "row_id": "numeric", "not_there": "numeric"})
    assert kinds["city"] == "text" and kinds["row_id"] == "numeric" and "not_there" not in kinds
    with pytest.raises(DataError, match="unknown kind 'number' for column 'age'"):
        infer_kinds(messy, {"age": "number"})


def test_long_labels_with_few_levels_stay_categorical():
    labels = ["Bachelor of Science in Mechanical Engineering", "Master of Business Administration program"]
    df = pd.DataFrame({"degree": labels * 20})
    assert infer_kinds(df)["degree"] == "categorical"


def test_profile_of_iris(iris):
    profile = profile_table(iris, target="target")
    assert profile.rows == 150 and profile.columns == 5
    assert profile.task == "classification"
    assert profile.class_balance == pytest.approx({"setosa": 1 / 3, "versicolor": 1 / 3, "virginica": 1 / 3}, abs=1e-3)
    assert profile.duplicate_rows == 1
    assert profile.leakage == []  # no single iris measurement separates all three species
    json.dumps(profile.to_dict())


def test_profile_of_regression_target(diabetes):
    profile = profile_table(diabetes, target="target")
    assert profile.task == "regression"
    assert profile.target_stats["min"] == pytest.approx(25.0) and profile.target_stats["max"] == pytest.approx(346.0)
    assert profile.class_balance == {}


def test_profile_finds_the_problems(messy):
    df = messy.copy()
    df["constant"] = 7
    df["age_copy"] = df["age"]
    df["leak"] = df["churn"].map({"yes_churn": "stayed_no", "no_churn": "stayed_yes"})
    df["leak_number"] = (df["churn"] == "yes_churn").astype(float) * 3 + np.random.default_rng(0).random(len(df))
    df.loc[df.index[:5], "churn"] = None
    df = pd.concat([df, df.iloc[[10, 11]]], ignore_index=True)
    df.loc[df.index[-1], "churn"] = "rare_class"
    profile = profile_table(df, target="churn", high_cardinality_threshold=20)
    assert "constant" in profile.constant_columns
    assert ("age", "age_copy") in profile.duplicate_columns
    assert profile.duplicate_rows == 1
    assert profile.high_cardinality == {"city": 40}
    assert profile.missing["age"] == pytest.approx(df["age"].isna().mean(), abs=1e-4)
    leaking = {item["column"] for item in profile.leakage}
    assert leaking == {"leak", "leak_number"}
    text = " | ".join(profile.warnings)
    assert "column 'constant' is constant" in text
    assert "column 'leak' alone predicts 'churn' (score 1.00): possible leakage" in text
    assert "class 'rare_class' is rare (0.3%)" in text
    assert "5 row(s) have no value in target 'churn'" in text
    assert "'customer_id' looks like an identifier" in text
    json.dumps(profile.to_dict())


def test_regression_leakage(diabetes):
    df = diabetes.copy()
    df["target_scaled"] = df["target"] * 2 + 1
    profile = profile_table(df, target="target")
    assert [item["column"] for item in profile.leakage] == ["target_scaled"]


def test_profile_without_target_and_unknown_target(messy):
    profile = profile_table(messy)
    assert profile.target is None and profile.task is None and profile.leakage == []
    with pytest.raises(DataError, match="did you mean 'churn'"):
        profile_table(messy, target="Churn")


def test_image_paths_and_sequences_have_kinds_of_their_own():
    df = pd.DataFrame({"photo": [f"shots/{i}.JPG" for i in range(30)], "series": [[i, i + 1.5] for i in range(30)],
                       "json_series": ["[1, 2]"] * 30, "caption": [f"photo {i} of the beach" for i in range(30)]})
    kinds = infer_kinds(df)
    assert kinds == {"photo": "image", "series": "sequence", "json_series": "sequence", "caption": kinds["caption"]}
    assert kinds["caption"] != "image"
