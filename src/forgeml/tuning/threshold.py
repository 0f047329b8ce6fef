"""Decision-threshold tuning for binary classification scored by a threshold metric.

Accuracy, F1, balanced accuracy, MCC, precision and recall judge labels, and labels depend on where
the positive class's probability is cut. 0.5 is rarely the best cut when classes are imbalanced or a
model is miscalibrated, so forgeml picks it on the out-of-fold (or validation) probabilities of the
final model, which never saw those rows, and keeps it only when it beats 0.5 there. The model applies
it at predict time (ForgeModel reads it from its metadata); probabilities are unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

GRID = 99  # candidate cuts: quantiles of the scored probabilities, plus 0.5


def label_at(p_positive: np.ndarray, threshold: float, classes: list[Any]) -> np.ndarray:
    """Labels of a binary problem: classes[1] where the positive probability reaches `threshold`."""
    return np.where(np.asarray(p_positive) >= threshold, classes[1], classes[0])


def tune_threshold(p_positive: np.ndarray, y: Any, metric: Any, classes: list[Any]) -> tuple[float, float, float]:
    """(best threshold, its score, the score at 0.5) for `metric` on probabilities of classes[1].

    Candidates are the 0.5 cut and the 1st..99th percentiles of the probabilities; ties keep the cut
    closest to 0.5, so a flat metric leaves the default alone.
    """
    p = np.asarray(p_positive, dtype=float)
    y = np.asarray(y)
    cuts = np.unique(np.concatenate([[0.5], np.quantile(p, np.linspace(0.01, 0.99, GRID))]))
    sign = 1.0 if metric.greater_is_better else -1.0
    base = float(metric(y, label_at(p, 0.5, classes), None, classes))
    best, best_score = 0.5, base
    for cut in sorted(cuts, key=lambda c: abs(c - 0.5)):
        score = float(metric(y, label_at(p, cut, classes), None, classes))
        if sign * score > sign * best_score + 1e-12:
            best, best_score = float(cut), score
    return best, best_score, base
