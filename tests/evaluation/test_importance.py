from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from forgeml.evaluation.importance import feature_importance


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {"signal": rng.normal(size=n)}
    for i in range(4):
        data[f"noise_{i}"] = rng.normal(size=n)
    data["color"] = rng.choice(["red", "green", "blue"], size=n)
    return pd.DataFrame(data)


def _pipeline(estimator) -> Pipeline:
    numeric = ["signal", *(f"noise_{i}" for i in range(4))]
    prepare = ColumnTransformer([("num", StandardScaler(), numeric), ("cat", OneHotEncoder(), ["color"])])
    return Pipeline([("prepare", prepare), ("model", estimator)])


@pytest.fixture(scope="module")
def binary_model():
    X = _frame(1200)
    rng = np.random.default_rng(1)
    y = np.where(X["signal"] + 0.3 * rng.normal(size=len(X)) > 0, "yes", "no")
    pipeline = _pipeline(LogisticRegression(max_iter=500)).fit(X, y)
    # a ForgeModel-like object: only `.pipeline` and `.classes` are used
    return SimpleNamespace(pipeline=pipeline, classes=list(pipeline.classes_)), X, y


@pytest.mark.parametrize("metric", ["roc_auc", "log_loss", "accuracy", "f1", "pr_auc"])
def test_binary_importance_finds_the_planted_feature(binary_model, metric):
    model, X, y = binary_model
    result = feature_importance(model, X, y, task="classification", metric_name=metric, n_repeats=3)
    assert [r["feature"] for r in result][0] == "signal"
    assert set(result[0]) == {"feature", "importance", "std"}
    assert {r["feature"] for r in result} == set(X.columns)
    importances = [r["importance"] for r in result]
    assert importances == sorted(importances, reverse=True)
    # the planted column matters by far the most; noise hardly at all (error metrics included)
    assert result[0]["importance"] > 0.1
    assert all(abs(r["importance"]) < 0.05 for r in result[1:])


def test_multiclass_importance_on_a_categorical_raw_column():
    X = _frame(900, seed=2)
    y = X["color"].map({"red": "warm", "green": "grass", "blue": "sky"}).to_numpy()
    flip = np.random.default_rng(3).random(len(y)) < 0.1
    y[flip] = "sky"
    pipeline = _pipeline(LogisticRegression(max_iter=500)).fit(X, y)
    result = feature_importance(pipeline, X, y, task="classification", metric_name="log_loss", n_repeats=2)
    assert result[0]["feature"] == "color"  # the raw column, not its one-hot parts


def test_regression_importance_and_sampling_is_seeded():
    X = _frame(5000, seed=4)
    y = 3 * X["signal"].to_numpy() + np.random.default_rng(5).normal(scale=0.5, size=len(X))
    model = SimpleNamespace(pipeline=_pipeline(LinearRegression()).fit(X, y))
    kwargs = {"task": "regression", "metric_name": "rmse", "max_rows": 400, "n_repeats": 2, "seed": 7}
    first = feature_importance(model, X, y, **kwargs)
    assert first[0]["feature"] == "signal" and first[0]["importance"] > 1.0
    assert feature_importance(model, X, y, **kwargs) == first
    r2 = feature_importance(model, X, y, task="regression", metric_name="r2", max_rows=400, n_repeats=2)
    assert r2[0]["feature"] == "signal" and r2[0]["importance"] > 0.5


def test_uncomputable_metric_falls_back_with_a_warning(binary_model, caplog):
    model, X, y = binary_model
    only_yes = y == "yes"
    with caplog.at_level(logging.WARNING, logger="forgeml.evaluation.importance"):
        result = feature_importance(model, X[only_yes], y[only_yes], task="classification", metric_name="roc_auc",
                                    n_repeats=2)
    assert "using accuracy" in caplog.text
    assert len(result) == X.shape[1]


def test_length_mismatch_is_reported(binary_model):
    model, X, y = binary_model
    with pytest.raises(ValueError, match="rows"):
        feature_importance(model, X, y[:10], task="classification", metric_name="accuracy")
