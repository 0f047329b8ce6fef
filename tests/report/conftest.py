"""Report contexts built from real fitted models, one per task."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from forgeml.evaluation.diagnose import baseline_score, diagnose_fit
from forgeml.evaluation.importance import feature_importance
from forgeml.evaluation.metrics import evaluate_predictions
from forgeml.report.builder import ReportContext


def _profile(X, target_balance=None, target_stats=None) -> dict:
    return {
        "rows": len(X),
        "columns": X.shape[1] + 1,
        "kinds": {c: "numeric" for c in X.columns},
        "missing": {X.columns[0]: 0.12, X.columns[1]: 0.03},
        "constant_columns": [],
        "duplicate_rows": 1,
        "high_cardinality": [],
        "class_balance": target_balance,
        "target_stats": target_stats,
        "leakage": [{"column": X.columns[2], "score": 0.97, "reason": "almost determines the target"}],
        "warnings": ["1 duplicate row"],
    }


@pytest.fixture(scope="session")
def classification_ctx() -> ReportContext:
    X, y = load_iris(return_X_y=True, as_frame=True)
    y = np.array(["setosa", "versicolor", "virginica"])[y]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=500)).fit(X[::2], y[::2])
    classes = list(model.classes_)
    evaluation = {
        split: evaluate_predictions("classification", yy, model.predict(xx), model.predict_proba(xx), classes)
        for split, xx, yy in [("train", X[::2], y[::2]), ("test", X[1::2], y[1::2])]
    }
    diagnosis = diagnose_fit(
        "log_loss", evaluation["train"]["metrics"]["log_loss"], None, evaluation["test"]["metrics"]["log_loss"],
        baseline=baseline_score("classification", "log_loss", y[::2], y[1::2], classes),
    )
    return ReportContext(
        title="iris classifier", model_name="iris", version=3, run_id="run-0123abcd", task="classification",
        metric="log_loss", target="species", created="2025-06-01T12:00:00+00:00",
        leaderboard=[
            {"family": "random_forest", "validation": 0.31, "fit_time": 1.2, "status": "ok", "note": ""},
            {"family": "logistic_regression", "validation": 0.22, "fit_time": 0.1, "status": "ok", "note": "",
             "cv_mean": 0.23, "cv_std": 0.02},
            {"family": "lightgbm", "validation": None, "fit_time": None, "status": "failed", "note": "out of memory"},
            {"family": "mlp", "validation": None, "fit_time": None, "status": "skipped", "note": "time budget"},
        ],
        evaluation=evaluation, diagnosis=diagnosis.to_dict(),
        importance=feature_importance(model, X[1::2], y[1::2], task="classification", metric_name="log_loss",
                                      n_repeats=2),
        profile=_profile(X, target_balance={"setosa": 50, "versicolor": 50, "virginica": 50}),
        spec={"seed": 42, "data": {"source": "iris.csv", "target": "species"}, "training": {"metric": "log_loss"}},
        data={"hash": "9f86d081884c7d659a2feaa0c55ad015", "rows": 150, "columns": 5, "source": "iris.csv"},
        warnings=["class balance is fine"],
    )


@pytest.fixture(scope="session")
def regression_ctx() -> ReportContext:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), Ridge()).fit(X[:300], y[:300])
    evaluation = {
        split: evaluate_predictions("regression", yy, model.predict(xx))
        for split, xx, yy in [("train", X[:250], y[:250]), ("validation", X[250:300], y[250:300]),
                              ("test", X[300:], y[300:])]
    }
    m = {s: evaluation[s]["metrics"]["rmse"] for s in evaluation}
    diagnosis = diagnose_fit("rmse", m["train"], m["validation"], m["test"],
                             baseline=baseline_score("regression", "rmse", y[:300], y[300:], None))
    return ReportContext(
        title="diabetes progression", model_name="diabetes", version=1, run_id="run-feed", task="regression",
        metric="rmse", target="progression", created="2025-06-01T12:00:00+00:00",
        leaderboard=[
            {"family": "ridge", "validation": m["validation"], "fit_time": 0.01, "status": "ok", "note": ""},
            {"family": "random_forest", "validation": m["validation"] * 1.1, "fit_time": 2.0, "status": "ok",
             "note": ""},
        ],
        evaluation=evaluation, diagnosis=diagnosis.to_dict(),
        importance=feature_importance(model, X[300:], y[300:], task="regression", metric_name="rmse", n_repeats=2),
        profile=_profile(X, target_stats={"mean": float(y.mean()), "std": float(y.std())}),
        residuals={"y_true": y[300:].tolist(), "y_pred": model.predict(X[300:]).tolist()},
        spec={"seed": 42, "data": {"target": "progression"}},
        data={"hash": "abc123", "rows": 442, "columns": 11, "source": "sklearn://diabetes"},
        warnings=[],
    )
