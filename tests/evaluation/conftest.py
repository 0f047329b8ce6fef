"""Real data sets with simple fitted models, shared by the evaluation tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def _pipeline(estimator):
    return Pipeline([("prepare", StandardScaler()), ("model", estimator)])


@pytest.fixture(scope="session")
def binary_case() -> SimpleNamespace:
    """Breast cancer with string labels; a mildly regularised logistic regression; the test half."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    y = np.where(y == 0, "malignant", "benign")
    model = _pipeline(LogisticRegression(C=0.05, max_iter=1000)).fit(X[::2], y[::2])
    X_test, y_test = X[1::2], y[1::2]
    return SimpleNamespace(
        X_train=X[::2], y_train=y[::2], X=X_test, y=y_test, model=model, classes=list(model.classes_),
        y_pred=model.predict(X_test), proba=model.predict_proba(X_test),
    )


@pytest.fixture(scope="session")
def multiclass_case() -> SimpleNamespace:
    """Iris with string labels, a weak logistic regression so that metrics are below 1."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    y = np.array(["setosa", "versicolor", "virginica"])[y]
    model = _pipeline(LogisticRegression(C=0.02, max_iter=1000)).fit(X[::2], y[::2])
    X_test, y_test = X[1::2], y[1::2]
    return SimpleNamespace(
        X=X_test, y=y_test, model=model, classes=list(model.classes_),
        y_pred=model.predict(X_test), proba=model.predict_proba(X_test),
    )


@pytest.fixture(scope="session")
def regression_case() -> SimpleNamespace:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = _pipeline(Ridge(alpha=1.0)).fit(X[:300], y[:300])
    return SimpleNamespace(
        X_train=X[:300], y_train=y[:300].to_numpy(), X=X[300:], y=y[300:].to_numpy(), model=model,
        y_pred=model.predict(X[300:]),
    )
