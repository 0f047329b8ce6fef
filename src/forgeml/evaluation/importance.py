"""Permutation feature importance on the raw input columns of a fitted model.

Shuffling a raw column (before preprocessing) and measuring how much the chosen forgeml metric
drops tells a user which of *their* columns matter, whatever encoding the pipeline applies.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from forgeml.evaluation.metrics import Metric, get_metric

logger = logging.getLogger(__name__)

_FALLBACK = {"classification": "accuracy", "regression": "r2"}


def _scorer(metric: Metric, classes: list[Any] | None) -> Any:
    """A scikit-learn scorer computing `metric`; error metrics are negated by make_scorer."""
    from sklearn.metrics import make_scorer

    if metric.needs_proba:

        def score_proba(y_true: np.ndarray, proba: np.ndarray) -> float:
            # Binary scorers receive only the positive column (classes[1]); Metric restores (n, 2).
            return metric(y_true, None, proba, classes)

        return make_scorer(score_proba, response_method="predict_proba", greater_is_better=metric.greater_is_better)

    def score_labels(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return metric(y_true, y_pred, None, classes)

    return make_scorer(score_labels, response_method="predict", greater_is_better=metric.greater_is_better)


def feature_importance(
    model: Any,
    X: pd.DataFrame,
    y: Sequence[Any],
    *,
    task: str,
    metric_name: str,
    classes: Sequence[Any] | None = None,
    seed: int = 0,
    max_rows: int = 2000,
    n_repeats: int = 5,
) -> list[dict[str, Any]]:
    """Permutation importance of each raw column of X, most important first.

    model: a fitted object exposing `.pipeline` (a ForgeModel) or a fitted sklearn estimator.
    X: (n, d) raw features; y: (n,). Rows are sampled down to `max_rows` with `seed`.
    Returns [{"feature", "importance", "std"}]: the mean and std drop in the metric (in its
    "higher is better" direction) over `n_repeats` shuffles. When the metric cannot be computed
    on the sample (e.g. roc_auc with a class absent), accuracy or r2 is used instead.
    """
    from sklearn.inspection import permutation_importance

    pipeline = getattr(model, "pipeline", model)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if len(X) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False))
        X, y = X.iloc[rows], y[rows]
    if task == "classification" and classes is None:
        classes = getattr(model, "classes", None)
        if classes is None:
            classes = getattr(pipeline, "classes_", None)
    classes = list(classes) if classes is not None else None

    metric = get_metric(metric_name)
    scorer = _scorer(metric, classes)
    try:
        scorer(pipeline, X, y)
    except ValueError as exc:
        fallback = _FALLBACK[task]
        logger.warning("importance: %s cannot be computed on this sample (%s); using %s", metric_name, exc, fallback)
        scorer = _scorer(get_metric(fallback), classes)

    result = permutation_importance(
        pipeline, X, y, scoring=scorer, n_repeats=n_repeats, random_state=seed, n_jobs=1
    )
    rows_out = [
        {"feature": str(name), "importance": float(mean), "std": float(std)}
        for name, mean, std in zip(X.columns, result.importances_mean, result.importances_std)
    ]
    return sorted(rows_out, key=lambda r: r["importance"], reverse=True)
