"""Fit diagnosis: is the model overfitting, underfitting or fitting well?

Compares the training score with a held-out one (validation, else test) and with the score of
a dummy model, and says in one sentence what to do about it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from forgeml.evaluation.metrics import get_metric

# Overfitting: train better than held-out by more than this (absolute, for bounded scores)...
SCORE_GAP = 0.05
# ...or by more than this fraction of the held-out error (for error metrics such as rmse).
ERROR_GAP = 0.25
# Underfitting: train and held-out both recover less than this fraction of the way from the
# baseline to a perfect score (1 for scores, 0 for errors); for r2 with baseline 0 that is r2 < 0.1.
MIN_IMPROVEMENT = 0.10
# Baselines that hold whatever the data when none is passed: chance ROC AUC, a constant predictor.
IMPLIED_BASELINES = {"roc_auc": 0.5, "r2": 0.0, "mcc": 0.0}


@dataclass
class Diagnosis:
    """The verdict on one model's fit. `gap` > 0 means train scored better than held-out."""

    verdict: str  # "overfitting" | "underfitting" | "good fit" | "unknown"
    metric: str
    train: float | None
    validation: float | None
    test: float | None
    gap: float | None
    message: str
    baseline: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _usable(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.1f}"


def _improvement(value: float, baseline: float, greater_is_better: bool) -> float:
    """Fraction of the way from `baseline` to a perfect score (1 for scores, 0 for errors)."""
    headroom = (1.0 - baseline) if greater_is_better else baseline
    if headroom <= 0:
        return math.inf  # the baseline is already perfect: nothing to underfit
    gain = (value - baseline) if greater_is_better else (baseline - value)
    return gain / headroom


def diagnose_fit(
    metric_name: str,
    train: float | None,
    validation: float | None,
    test: float | None,
    *,
    baseline: float | None = None,
) -> Diagnosis:
    """Diagnose the fit from train and held-out scores of `metric_name`.

    Rules, checked in this order; held-out is validation when given, else test:
    - unknown: train or held-out missing (None or NaN).
    - underfitting: a baseline is known (`baseline`, the dummy model's score, or an implied one:
      0.5 for roc_auc, 0 for r2 and mcc) and both train and held-out recover less than
      MIN_IMPROVEMENT (10%) of the way from the baseline to a perfect score.
    - overfitting: train beats held-out by more than SCORE_GAP (0.05 absolute) for score
      metrics, or held-out error exceeds train error by more than ERROR_GAP (25% of the
      held-out error) for error metrics (rmse, mae, log_loss, ...).
    - good fit otherwise.
    `gap` is absolute for scores and relative for errors, positive when train is better.
    """
    metric = get_metric(metric_name)
    train, validation, test = _usable(train), _usable(validation), _usable(test)
    baseline = _usable(baseline)
    if baseline is None:
        baseline = IMPLIED_BASELINES.get(metric_name)
    held_name, held = ("validation", validation) if validation is not None else ("test", test)

    def result(verdict: str, gap: float | None, message: str) -> Diagnosis:
        return Diagnosis(verdict, metric_name, train, validation, test, gap, message, baseline)

    if train is None or held is None:
        return result(
            "unknown",
            None,
            f"need both a train and a held-out (validation or test) {metric_name} to diagnose the fit",
        )

    if metric.greater_is_better:
        gap = train - held
        overfit = gap > SCORE_GAP
    else:
        gap = (held - train) / max(abs(held), 1e-12) if held != train else 0.0
        overfit = gap > ERROR_GAP
    pair = f"train {metric_name} {_fmt(train)} vs {held_name} {_fmt(held)}"

    if baseline is not None:
        gains = [_improvement(v, baseline, metric.greater_is_better) for v in (train, held)]
        if max(gains) < MIN_IMPROVEMENT:
            return result(
                "underfitting",
                gap,
                f"{pair} barely beat a dummy model's {_fmt(baseline)}: the model misses the signal; "
                "try a more flexible model family, more informative features or a longer time limit",
            )
    if overfit:
        return result(
            "overfitting",
            gap,
            f"{pair}: the model memorises the training data; regularise, simplify or add data",
        )
    return result(
        "good fit",
        gap,
        f"{pair}: held-out performance is close to training, so the model generalises at this level",
    )


def baseline_score(
    task: str,
    metric_name: str,
    y_train: Sequence[Any],
    y_eval: Sequence[Any],
    classes: Sequence[Any] | None = None,
) -> float:
    """The metric of a dummy model fitted on y_train and scored on y_eval; NaN when undefined.

    Classification: the most frequent training class, with the training class frequencies as
    probabilities; regression: the training mean.
    """
    metric = get_metric(metric_name)
    y_train = np.asarray(y_train)
    y_eval = np.asarray(y_eval)
    if task == "classification":
        if classes is None:
            classes = list(np.unique(np.concatenate([y_train, y_eval])))
        counts = Counter(y_train.tolist())
        priors = np.array([counts.get(_python(c), 0) for c in classes], dtype=float)
        priors = priors / priors.sum()
        majority = classes[int(np.argmax(priors))]
        y_pred = np.full(len(y_eval), majority)
        proba = np.tile(priors, (len(y_eval), 1))
    else:
        y_pred = np.full(len(y_eval), float(np.mean(y_train.astype(float))))
        proba = None
    try:
        return metric(y_eval, y_pred, proba, classes)
    except (ValueError, TypeError):
        return math.nan


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
