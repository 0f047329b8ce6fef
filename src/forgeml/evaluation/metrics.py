"""The metric registry: one `Metric` per name, computed with scikit-learn.

A metric takes true labels or values, hard predictions and, for probability metrics, an
(n, k) `proba` array whose columns follow `classes`. Binary metrics treat `classes[1]` as the
positive class. `evaluate_predictions` computes every applicable metric for one split and
returns JSON-safe values; a metric that cannot be computed (a class absent from y_true, one
row for r2) is left out rather than raising.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn import metrics as skm

from forgeml.errors import SpecError, did_you_mean

logger = logging.getLogger(__name__)

TASKS = ("classification", "regression")

# Inputs of a metric function: y_true, y_pred, proba, classes (already normalised).
MetricFn = Callable[[np.ndarray, "np.ndarray | None", "np.ndarray | None", list[Any]], float]


@dataclass(frozen=True)
class Metric:
    """One named metric.

    Score metrics (greater_is_better) are bounded above by 1; error metrics below by 0;
    `forgeml.evaluation.diagnose` relies on that to put scores on a common scale.
    """

    name: str
    task: str
    greater_is_better: bool
    needs_proba: bool
    binary_only: bool = False
    description: str = ""
    fn: MetricFn | None = field(default=None, repr=False, compare=False)

    def __call__(
        self,
        y_true: Sequence[Any],
        y_pred: Sequence[Any] | None = None,
        proba: Any = None,
        classes: Sequence[Any] | None = None,
    ) -> float:
        """The metric as a float. Labels are derived from `proba` when `y_pred` is None.

        Raises ValueError when the inputs do not allow the metric (missing proba, a class
        absent from y_true for roc_auc, a multiclass target for a binary-only metric).
        """
        if self.fn is None:
            raise ValueError(f"metric '{self.name}' has no implementation")
        y_true = np.asarray(y_true)
        if y_true.shape[0] == 0:
            raise ValueError(f"metric '{self.name}' needs at least one row")
        if proba is not None:
            proba = np.asarray(proba, dtype=float)
            if proba.ndim == 1:  # binary scores of classes[1], as scikit-learn scorers pass them
                proba = np.column_stack([1.0 - proba, proba])
        if self.task == "classification":
            classes = _classes(y_true, y_pred, proba, classes)
            if y_pred is None and proba is not None:
                y_pred = np.asarray(classes)[np.argmax(proba, axis=1)]
            if self.binary_only and len(classes) != 2:
                raise ValueError(f"metric '{self.name}' needs a binary target; got {len(classes)} classes")
        if self.needs_proba and proba is None:
            raise ValueError(f"metric '{self.name}' needs predicted probabilities (proba)")
        if not self.needs_proba and y_pred is None:
            raise ValueError(f"metric '{self.name}' needs predictions (y_pred)")
        y_pred = None if y_pred is None else np.asarray(y_pred)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(self.fn(y_true, y_pred, proba, list(classes) if classes is not None else []))
        return value


def _classes(y_true: np.ndarray, y_pred: Any, proba: Any, classes: Sequence[Any] | None) -> list[Any]:
    if classes is not None:
        return list(classes)
    if proba is not None:
        raise ValueError("proba given without classes: pass the class labels in proba column order")
    seen = y_true if y_pred is None else np.concatenate([y_true, np.asarray(y_pred)])
    return list(np.unique(seen))


# ----------------------------------------------------------------------------- implementations


def _require_all_present(y_true: np.ndarray, classes: list[Any]) -> None:
    absent = [c for c in classes if not np.any(y_true == c)]
    if absent:
        raise ValueError(f"class(es) {absent} absent from y_true")


def _roc_auc(y_true: np.ndarray, _pred: Any, proba: np.ndarray, classes: list[Any]) -> float:
    _require_all_present(y_true, classes)
    if len(classes) == 2:
        return skm.roc_auc_score(y_true == classes[1], proba[:, 1])
    return skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes)


def _pr_auc(y_true: np.ndarray, _pred: Any, proba: np.ndarray, classes: list[Any]) -> float:
    _require_all_present(y_true, classes)
    if len(classes) == 2:
        return skm.average_precision_score(y_true == classes[1], proba[:, 1])
    onehot = np.column_stack([y_true == c for c in classes])
    return skm.average_precision_score(onehot, proba, average="macro")


def _binary(score: Callable[..., float]) -> MetricFn:
    return lambda t, p, _proba, classes: score(t, p, pos_label=classes[1], average="binary", zero_division=0)


def _mape(y_true: np.ndarray, y_pred: np.ndarray, _proba: Any, _classes: list[Any]) -> float:
    y_true = y_true.astype(float)
    keep = y_true != 0  # percentage error is undefined at zero; those rows are skipped
    if not keep.any():
        raise ValueError("mape is undefined when every true value is 0")
    return skm.mean_absolute_percentage_error(y_true[keep], y_pred.astype(float)[keep])


def _r2(y_true: np.ndarray, y_pred: np.ndarray, _proba: Any, _classes: list[Any]) -> float:
    if len(y_true) < 2:
        raise ValueError("r2 needs at least two rows")
    return skm.r2_score(y_true, y_pred)


def _labels(score: Callable[..., float], **kwargs: Any) -> MetricFn:
    return lambda t, p, _proba, _classes: score(t, p, **kwargs)


def _values(score: Callable[..., float]) -> MetricFn:
    return lambda t, p, _proba, _classes: score(t.astype(float), p.astype(float))


_REGISTRY: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add a metric to the registry (the extension point); its name must be new."""
    if metric.task not in TASKS:
        raise ValueError(f"metric task must be one of {TASKS}; got {metric.task!r}")
    if metric.name in _REGISTRY:
        raise ValueError(f"metric '{metric.name}' is already registered")
    _REGISTRY[metric.name] = metric
    return metric


_C, _R = "classification", "regression"
for _m in [
    Metric("accuracy", _C, True, False, description="fraction of correct labels",
           fn=_labels(skm.accuracy_score)),
    Metric("balanced_accuracy", _C, True, False, description="mean recall over classes",
           fn=_labels(skm.balanced_accuracy_score)),
    Metric("precision_macro", _C, True, False, description="precision averaged over classes",
           fn=_labels(skm.precision_score, average="macro", zero_division=0)),
    Metric("recall_macro", _C, True, False, description="recall averaged over classes",
           fn=_labels(skm.recall_score, average="macro", zero_division=0)),
    Metric("f1_macro", _C, True, False, description="F1 averaged over classes",
           fn=_labels(skm.f1_score, average="macro", zero_division=0)),
    Metric("f1", _C, True, False, True, "F1 of the positive class (classes[1])", _binary(skm.f1_score)),
    Metric("precision", _C, True, False, True, "precision of the positive class", _binary(skm.precision_score)),
    Metric("recall", _C, True, False, True, "recall of the positive class", _binary(skm.recall_score)),
    Metric("roc_auc", _C, True, True, description="area under the ROC curve (multiclass: one-vs-rest macro)",
           fn=_roc_auc),
    Metric("pr_auc", _C, True, True, description="average precision (multiclass: one-vs-rest macro)", fn=_pr_auc),
    Metric("log_loss", _C, False, True, description="cross-entropy of the predicted probabilities",
           fn=lambda t, _p, proba, classes: skm.log_loss(t, proba, labels=classes)),
    Metric("mcc", _C, True, False, description="Matthews correlation coefficient",
           fn=_labels(skm.matthews_corrcoef)),
    Metric("mse", _R, False, False, description="mean squared error", fn=_values(skm.mean_squared_error)),
    Metric("rmse", _R, False, False, description="root mean squared error", fn=_values(skm.root_mean_squared_error)),
    Metric("mae", _R, False, False, description="mean absolute error", fn=_values(skm.mean_absolute_error)),
    Metric("r2", _R, True, False, description="coefficient of determination", fn=_r2),
    Metric("mape", _R, False, False, description="mean absolute percentage error as a fraction (rows with y=0 skipped)",
           fn=_mape),
    Metric("median_ae", _R, False, False, description="median absolute error", fn=_values(skm.median_absolute_error)),
]:
    register_metric(_m)

_MACRO_OF = {"f1": "f1_macro", "precision": "precision_macro", "recall": "recall_macro"}


# ----------------------------------------------------------------------------- lookup


def metric_names() -> list[str]:
    """Every registered metric name, sorted."""
    return sorted(_REGISTRY)


def get_metric(name: str) -> Metric:
    """The metric called `name`; SpecError naming the close matches and the known names otherwise."""
    metric = _REGISTRY.get(name)
    if metric is None:
        names = metric_names()
        raise SpecError(f"unknown metric '{name}'{did_you_mean(name, names)} (known: {', '.join(names)})")
    return metric


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise SpecError(f"unknown task '{task}'{did_you_mean(task, TASKS)} (known: {', '.join(TASKS)})")


def metrics_for(task: str, n_classes: int | None = None) -> list[Metric]:
    """The metrics that apply to a task, in registry order; binary-only ones only when n_classes == 2."""
    _check_task(task)
    return [
        m for m in _REGISTRY.values() if m.task == task and (not m.binary_only or n_classes == 2)
    ]


def default_metric(task: str, n_classes: int | None = None) -> str:
    """roc_auc for binary, log_loss for multiclass (or an unknown class count), rmse for regression."""
    _check_task(task)
    if task == "regression":
        return "rmse"
    return "roc_auc" if n_classes == 2 else "log_loss"


def check_metric_fits(name: str, task: str, n_classes: int | None = None) -> Metric:
    """The metric, after checking it suits the task and class count; SpecError saying what fits otherwise."""
    metric = get_metric(name)
    _check_task(task)
    if metric.task != task:
        fitting = ", ".join(m.name for m in metrics_for(task, n_classes))
        raise SpecError(
            f"metric '{name}' is for {metric.task}, but this is a {task} task; choose one of: {fitting}"
        )
    if metric.binary_only and n_classes is not None and n_classes != 2:
        raise SpecError(
            f"metric '{name}' needs a binary target, but this target has {n_classes} classes; "
            f"use '{_MACRO_OF.get(name, 'f1_macro')}' instead"
        )
    return metric


def is_better(metric_name: str, a: float | None, b: float | None) -> bool:
    """True when score `a` is strictly better than `b`; a missing or NaN score is worse than any number."""
    a_ok = a is not None and not math.isnan(a)
    b_ok = b is not None and not math.isnan(b)
    if not a_ok:
        return False
    if not b_ok:
        return True
    return a > b if get_metric(metric_name).greater_is_better else a < b


# ----------------------------------------------------------------------------- evaluation


def _json_value(value: Any) -> Any:
    """A numpy scalar as the matching python scalar; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def evaluate_predictions(
    task: str,
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    proba: Any = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Every applicable metric for one split, plus per-class, confusion and residual summaries.

    y_true, y_pred: (n,); proba: (n, k) aligned with `classes`. Returns JSON-safe
    {"metrics": {name: float}, "n_samples": n, and for classification "per_class" and
    "confusion_matrix", for regression "residuals_summary"}.
    """
    _check_task(task)
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(f"y_true has {y_true.shape[0]} rows but y_pred has {y_pred.shape[0]}")
    if task == "classification":
        classes = _classes(y_true, y_pred, proba, classes)
    n_classes = len(classes) if classes is not None else None
    values: dict[str, float] = {}
    for metric in metrics_for(task, n_classes):
        if metric.needs_proba and proba is None:
            continue
        try:
            value = metric(y_true, y_pred, proba, classes)
        except (ValueError, TypeError, ZeroDivisionError) as exc:
            logger.debug("metric %s left out: %s", metric.name, exc)
            continue
        if math.isfinite(value):
            values[metric.name] = value
    result: dict[str, Any] = {"metrics": values, "n_samples": int(y_true.shape[0])}
    if task == "classification":
        result.update(_classification_summaries(y_true, y_pred, list(classes)))
    else:
        residuals = y_true.astype(float) - y_pred.astype(float)
        result["residuals_summary"] = {
            "mean": float(np.mean(residuals)),
            "std": float(np.std(residuals)),
            "p5": float(np.percentile(residuals, 5)),
            "p95": float(np.percentile(residuals, 95)),
        }
    return result


def _classification_summaries(y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=classes, zero_division=0
        )
        matrix = skm.confusion_matrix(y_true, y_pred, labels=classes)
    per_class = {
        str(label): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(classes)
    }
    return {
        "per_class": per_class,
        "confusion_matrix": {
            "labels": [_json_value(c) for c in classes],
            "matrix": [[int(v) for v in row] for row in matrix],
        },
    }


def score(
    metric_name: str,
    task: str,
    y_true: Sequence[Any],
    y_pred: Sequence[Any] | None = None,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
) -> float:
    """One metric, after checking it fits the task; raises ValueError when it cannot be computed."""
    n_classes = None
    if task == "classification":
        n_classes = len(classes) if classes is not None else len(np.unique(np.asarray(y_true)))
    metric = check_metric_fits(metric_name, task, n_classes)
    return metric(y_true, y_pred, proba, classes)
