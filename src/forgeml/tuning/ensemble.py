"""Ensembles over out-of-fold predictions: Caruana's greedy selection and a stacked meta-learner.

AutoML scores every candidate by out-of-fold (or holdout) predictions. From those predictions alone,
`greedy_selection` finds weights by ensemble selection with replacement (Caruana et al., 2004) and
`stack` fits a meta-learner with an inner cross-validation. `choose` scores both honestly (greedy
weights cross-fitted, the meta-learner out-of-fold) and keeps one only where it beats the best single
model. `EnsembleClassifier` / `EnsembleRegressor` combine the fitted member pipelines; the registry
saves them member by member, each with the codec it needs, and never with pickle.

Shapes: classification predictions are (n, k) probabilities whose columns follow `classes`;
regression predictions are (n,) values; `y` is (n,).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone

from forgeml.errors import DataError, SpecError

TASKS = ("classification", "regression")
METHODS = ("greedy", "stacked")


# ----------------------------------------------------------------------------- checks and helpers


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise SpecError(f"ensemble task must be one of {', '.join(TASKS)}; got task={task!r}")


def _check_inputs(
    predictions: Sequence[Any], y: Any, task: str, classes: Sequence[Any] | None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Predictions as float arrays of one shape and y as an array, or a one-line DataError/SpecError."""
    _check_task(task)
    if len(predictions) == 0:
        raise DataError("an ensemble needs the predictions of at least one model; got an empty list")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise DataError(f"y must be a non-empty 1-d array of targets; got shape {y.shape}")
    if task == "classification":
        if classes is None or len(classes) < 2:
            raise SpecError(f"classification ensembles need the class labels (at least two); got classes={classes!r}")
        unknown = sorted({str(v) for v in np.unique(y)} - {str(c) for c in classes})
        if unknown:
            raise DataError(f"labels {unknown[:5]} in y are not among classes {list(classes)}; pass every class")
        expected: tuple[int, ...] = (len(y), len(classes))
    else:
        expected = (len(y),)
    preds = []
    for i, p in enumerate(predictions):
        p = np.asarray(p, dtype=float)
        if task == "regression" and p.ndim == 2 and p.shape[1] == 1:
            p = p[:, 0]
        if p.shape != expected:
            what = "(rows, classes) probabilities" if task == "classification" else "(rows,) values"
            raise DataError(f"predictions[{i}] has shape {p.shape}, expected {expected}: "
                            f"{what} for the {len(y)} rows of y")
        if not np.isfinite(p).all():
            raise DataError(f"predictions[{i}] holds NaN or infinite values; pass finite predictions")
        preds.append(p)
    return preds, y


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SpecError(f"ensemble '{name}' must be an integer >= {low}; got {name}={value!r}")
    return int(value)


def _check_metric(metric: Any, task: str) -> None:
    if getattr(metric, "task", None) != task:
        raise SpecError(f"metric {getattr(metric, 'name', metric)!r} does not score a {task} task; "
                        "pass a forgeml Metric for this task (forgeml.evaluation.metrics.get_metric)")


def _score(metric: Any, y: np.ndarray, pred: np.ndarray, task: str, classes: Sequence[Any] | None) -> float:
    """The metric of one prediction; threshold metrics score the argmax of the probabilities."""
    if task == "classification":
        return float(metric(y, None, pred, list(classes or [])))
    return float(metric(y, pred))


def _align(proba: np.ndarray, fitted: Sequence[Any], classes: Sequence[Any]) -> np.ndarray:
    """Probability columns reordered from `fitted` to `classes`, zeros for classes the fit never saw."""
    fitted = list(fitted)
    if fitted == list(classes):
        return np.asarray(proba, dtype=float)
    out = np.zeros((proba.shape[0], len(classes)))
    index = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(fitted):
        out[:, index[c]] = proba[:, j]
    return out


def _blend(preds: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The weighted average of the members' predictions (members with weight 0 are not touched)."""
    return sum(w * p for w, p in zip(weights, preds) if w > 0)


def _meta_features(preds: Sequence[np.ndarray], task: str) -> np.ndarray:
    """Level-one features: values, or probabilities (binary: of classes[1] only, the other is redundant)."""
    if task == "regression":
        return np.column_stack(preds)
    if preds[0].shape[1] == 2:
        return np.column_stack([p[:, 1] for p in preds])
    return np.hstack(preds)


def _meta_learner(task: str, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression, RidgeCV

    if task == "classification":
        return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    return RidgeCV(alphas=np.logspace(-3, 3, 13))


def _folds(y: np.ndarray, task: str, cv: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    import warnings

    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (StratifiedKFold if task == "classification" else KFold)(cv, shuffle=True, random_state=seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a class rarer than cv folds: stratification does its best
            return list(splitter.split(np.zeros(len(y)), y))
    except ValueError as exc:
        raise DataError(f"cannot split {len(y)} rows into cv={cv} folds ({exc}); lower cv or pass more rows") from None


def _meta_proba(meta: Any, X: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    return _align(meta.predict_proba(X), meta.classes_, classes)


# ----------------------------------------------------------------------------- greedy selection


def greedy_selection(
    predictions: Sequence[Any],
    y: Any,
    metric: Any,
    *,
    rounds: int = 25,
    task: str,
    classes: Sequence[Any] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Caruana's ensemble selection with replacement; returns one weight per member, summing to 1.

    Starts from the best single member and, for up to `rounds` picks in all, adds the member whose
    inclusion scores best. The ensemble kept is the best prefix of those picks (the shortest on a tie),
    so its score on these predictions is never worse than the best member's. Members that score the
    same are preferred in a seeded order, so the weights are reproducible for a seed.
    """
    preds, y = _check_inputs(predictions, y, task, classes)
    _check_metric(metric, task)
    rounds = _check_int("rounds", rounds, 1)
    sign = 1.0 if metric.greater_is_better else -1.0
    order = np.random.default_rng(seed).permutation(len(preds))  # preference among tied members

    def pick(total: np.ndarray | float, size: int) -> tuple[int, float]:
        gains = [sign * _score(metric, y, (total + preds[j]) / (size + 1), task, classes) for j in order]
        best = int(np.argmax(gains))  # first of the tied, in the seeded order
        return int(order[best]), gains[best]

    counts = np.zeros(len(preds))
    total: np.ndarray | float = 0.0
    best_gain, best_counts = 0.0, counts
    for size in range(rounds):
        j, gain = pick(total, size)
        counts = counts.copy()
        counts[j] += 1
        total = total + preds[j]
        if size == 0 or gain > best_gain + 1e-12 * max(1.0, abs(best_gain)):  # rounding noise is no gain
            best_gain, best_counts = gain, counts
    return best_counts / best_counts.sum()


# ----------------------------------------------------------------------------- stacking


@dataclass
class Stacked:
    """A meta-learner fitted on every row, and its honest out-of-fold predictions ((n, k) or (n,))."""

    meta: Any
    oof: np.ndarray


def stack(
    predictions: Sequence[Any],
    y: Any,
    *,
    task: str,
    classes: Sequence[Any] | None = None,
    seed: int = 0,
    cv: int = 5,
) -> Stacked:
    """Fit a meta-learner on the members' predictions: logistic regression on probabilities, ridge on values.

    The returned `oof` comes from refitting the meta-learner on `cv` folds, so scoring it is honest;
    `meta` is then fitted on every row.
    """
    preds, y = _check_inputs(predictions, y, task, classes)
    cv = _check_int("cv", cv, 2)
    X = _meta_features(preds, task)
    folds = _folds(y, task, cv, seed)
    oof = np.zeros(preds[0].shape)
    for train, valid in folds:
        meta = _meta_learner(task, seed).fit(X[train], y[train])
        oof[valid] = _meta_proba(meta, X[valid], classes or []) if task == "classification" else meta.predict(X[valid])
    return Stacked(meta=_meta_learner(task, seed).fit(X, y), oof=oof)


# ----------------------------------------------------------------------------- choosing


@dataclass
class EnsemblePlan:
    """An ensemble that beat the best single model: which members it uses and how it combines them.

    members: indices into the candidates' predictions, in order; `build` takes those members' fitted
    pipelines (usually refitted on all rows) in the same order.
    """

    method: str  # greedy | stacked
    members: list[int]
    score: float
    weights: np.ndarray | None = None  # greedy: one per entry of `members`
    meta: Any = None  # stacked: the meta-learner fitted on every row
    classes: list[Any] | None = field(default=None, repr=False)

    def combine(self, preds: Sequence[Any]) -> np.ndarray:
        """The ensemble's prediction from its members' predictions (one array per entry of `members`):
        probabilities (N, K) for classification, values (N,) for regression."""
        preds = [np.asarray(p, dtype=float) for p in preds]
        if self.method == "greedy":
            return _blend(preds, self.weights)
        task = "classification" if self.classes is not None else "regression"
        features = _meta_features(preds, task)
        return _meta_proba(self.meta, features, self.classes) if task == "classification" else self.meta.predict(features)

    def build(self, fitted: Sequence[Any]) -> EnsembleClassifier | EnsembleRegressor:
        """The fitted ensemble estimator over `fitted` (one pipeline per entry of `members`)."""
        if len(fitted) != len(self.members):
            raise SpecError(f"this {self.method} ensemble uses {len(self.members)} members "
                            f"(candidates {self.members}); got {len(fitted)} fitted pipelines")
        cls = EnsembleClassifier if self.classes is not None else EnsembleRegressor
        return cls.from_fitted(list(fitted), weights=self.weights, meta=self.meta, classes=self.classes)


def choose(
    predictions: Sequence[Any],
    y: Any,
    metric: Any,
    *,
    task: str,
    classes: Sequence[Any] | None = None,
    best_score: float | None = None,
    rounds: int = 25,
    cv: int = 5,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
) -> tuple[EnsemblePlan | None, dict[str, float]]:
    """The best ensemble of the candidates if it beats the best single model on validation, else None.

    predictions: each candidate's out-of-fold (or holdout) predictions of `y`. best_score: the best
    single candidate's score on them (computed when None). Greedy weights are scored cross-fitted
    (found on the other folds, applied to each fold) and the stacked meta-learner out-of-fold, so
    neither is judged on rows it was fitted on. Returns (plan or None, {"best_single", "greedy",
    "stacked"} scores for the leaderboard; NaN where an option could not be scored).
    """
    preds, y = _check_inputs(predictions, y, task, classes)
    _check_metric(metric, task)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SpecError(f"ensemble methods must be among {', '.join(METHODS)}; got methods={list(methods)!r}")
    rounds, cv = _check_int("rounds", rounds, 1), _check_int("cv", cv, 2)
    sign = 1.0 if metric.greater_is_better else -1.0
    if best_score is None:
        best_score = max((_score(metric, y, p, task, classes) for p in preds), key=lambda s: sign * s)
    scores: dict[str, float] = {"best_single": float(best_score)}
    options: list[EnsemblePlan] = []
    folds = _folds(y, task, cv, seed)
    labels = list(classes) if task == "classification" else None
    if "greedy" in methods:
        kwargs = {"rounds": rounds, "task": task, "classes": classes, "seed": seed}
        crossfit = np.zeros(preds[0].shape)
        try:
            for train, valid in folds:
                w = greedy_selection([p[train] for p in preds], y[train], metric, **kwargs)
                crossfit[valid] = _blend([p[valid] for p in preds], w)
            scores["greedy"] = _safe_score(metric, y, crossfit, task, classes)
        except ValueError:  # the metric cannot score a fold's rows (e.g. roc_auc and a class absent from them)
            scores["greedy"] = float("nan")
        weights = greedy_selection(preds, y, metric, **kwargs)
        used = [int(i) for i in np.flatnonzero(weights)]
        if len(used) > 1:  # all the weight on one member is that model, not an ensemble
            options.append(EnsemblePlan("greedy", used, scores["greedy"], weights=weights[used], classes=labels))
    if "stacked" in methods:
        scores["stacked"] = float("nan")  # stays NaN with one candidate, or when the meta-learner cannot fit
        try:
            stacked = stack(preds, y, task=task, classes=classes, seed=seed, cv=cv) if len(preds) > 1 else None
        except ValueError:  # e.g. a fold with one class
            stacked = None
        if stacked is not None:
            scores["stacked"] = _safe_score(metric, y, stacked.oof, task, classes)
            options.append(EnsemblePlan("stacked", list(range(len(preds))), scores["stacked"], meta=stacked.meta,
                                        classes=labels))
    winners = [o for o in options if np.isfinite(o.score) and sign * o.score > sign * best_score]
    plan = max(winners, key=lambda o: sign * o.score) if winners else None  # greedy first on a tie
    return plan, scores


def _safe_score(metric: Any, y: np.ndarray, pred: np.ndarray, task: str, classes: Any) -> float:
    try:
        return _score(metric, y, pred, task, classes)
    except ValueError:  # e.g. roc_auc with a class a fold never predicted
        return float("nan")


# ----------------------------------------------------------------------------- estimators


class _Ensemble(BaseEstimator):
    """Members' predictions combined by greedy weights or a stacked meta-learner.

    `fit` finds the combination from the members' out-of-fold predictions (`cv` folds, seeded by
    `seed`), scored by `metric` (a metric name; the task's default when None), then refits the members
    it uses on every row. `from_fitted` wraps members and a combination found elsewhere (AutoML).
    """

    _task = ""

    def __init__(
        self,
        members: Sequence[Any],
        *,
        method: str = "greedy",
        metric: str | None = None,
        rounds: int = 25,
        cv: int = 5,
        seed: int = 0,
    ) -> None:
        self.members = members
        self.method = method
        self.metric = metric
        self.rounds = rounds
        self.cv = cv
        self.seed = seed

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> _Ensemble:
        from sklearn.model_selection import cross_val_predict

        from forgeml.evaluation.metrics import check_metric_fits, default_metric

        if self.method not in METHODS:
            raise SpecError(f"ensemble 'method' must be one of {', '.join(METHODS)}; got method={self.method!r}")
        if len(self.members) == 0:
            raise SpecError("an ensemble needs at least one member estimator; got members=[]")
        y = np.asarray(y)
        classes = list(np.unique(y)) if self._task == "classification" else None
        n_classes = len(classes) if classes is not None else None
        metric = check_metric_fits(self.metric or default_metric(self._task, n_classes), self._task, n_classes)
        folds = _folds(y, self._task, _check_int("cv", self.cv, 2), self.seed)
        how = "predict_proba" if self._task == "classification" else "predict"
        oof = [cross_val_predict(clone(m), X, y, cv=folds, method=how) for m in self.members]
        if self.method == "greedy":
            weights = greedy_selection(oof, y, metric, rounds=self.rounds, task=self._task, classes=classes,
                                       seed=self.seed)
            used, meta = [int(i) for i in np.flatnonzero(weights)], None
            weights = weights[used]
        else:
            used, weights = list(range(len(self.members))), None
            meta = stack(oof, y, task=self._task, classes=classes, seed=self.seed, cv=self.cv).meta
        self._set_fitted([clone(self.members[i]).fit(X, y) for i in used], weights, meta, classes)
        self.used_ = used
        return self

    @classmethod
    def from_fitted(
        cls,
        members: Sequence[Any],
        *,
        weights: Sequence[float] | None = None,
        meta: Any = None,
        classes: Sequence[Any] | None = None,
    ) -> _Ensemble:
        """An ensemble of already fitted `members` with `weights` (greedy) or a fitted `meta` (stacked).

        classes (classification): the label order of predict_proba; by default every member's classes, sorted.
        """
        if len(members) == 0:
            raise SpecError("an ensemble needs at least one fitted member; got members=[]")
        if (weights is None) == (meta is None):
            raise SpecError("pass either weights (greedy ensemble) or a fitted meta-learner (stacked), "
                            "not both or neither")
        if weights is not None:
            weights = np.asarray(weights, dtype=float)
            if weights.shape != (len(members),) or (weights < 0).any() or not weights.sum() > 0:
                raise SpecError(f"ensemble weights must be {len(members)} non-negative numbers with a positive sum; "
                                f"got weights={weights.tolist()}")
            weights = weights / weights.sum()
        if cls._task == "classification" and classes is None:
            classes = sorted({c for m in members for c in m.classes_})
        ensemble = cls(list(members), method="greedy" if weights is not None else "stacked")
        ensemble._set_fitted(list(members), weights, meta, classes)
        ensemble.used_ = list(range(len(members)))
        return ensemble

    def _set_fitted(self, members: list[Any], weights: np.ndarray | None, meta: Any, classes: Any) -> None:
        self.members_ = members
        self.weights_ = weights
        self.meta_ = meta
        if self._task == "classification":
            self.classes_ = np.asarray(list(classes))  # the labels' natural dtype, as sklearn's metrics want

    # -- predicting -----------------------------------------------------------------------------

    def _member_predictions(self, X: Any) -> list[np.ndarray]:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "members_")
        active = range(len(self.members_)) if self.weights_ is None else np.flatnonzero(self.weights_)
        preds: list[np.ndarray] = [np.empty(0)] * len(self.members_)
        for i in active:
            m = self.members_[i]
            preds[i] = (_align(m.predict_proba(X), m.classes_, self.classes_) if self._task == "classification"
                        else np.asarray(m.predict(X), dtype=float))
        return preds

    # -- saving (forgeml.registry.package.EnsembleCodec) --------------------------------------

    def _export(self) -> dict[str, Any]:
        """What the registry stores as JSON next to the members: parameters, classes and weights."""
        return {
            "class": type(self).__name__,
            "params": {k: v for k, v in self.get_params(deep=False).items() if k != "members"},
            "classes": None if self._task != "classification" else list(self.classes_),
            "weights": None if self.weights_ is None else [float(w) for w in self.weights_],
            "used": [int(i) for i in self.used_],
        }

    @classmethod
    def _restore(cls, payload: dict[str, Any], members: list[Any], meta: Any) -> _Ensemble:
        ensemble = cls(list(members), **payload["params"])
        weights = None if payload.get("weights") is None else np.asarray(payload["weights"], dtype=float)
        ensemble._set_fitted(list(members), weights, meta, payload.get("classes"))
        ensemble.used_ = [int(i) for i in payload["used"]]
        return ensemble


class EnsembleClassifier(ClassifierMixin, _Ensemble):
    """Class probabilities of member pipelines, averaged with weights or combined by logistic regression."""

    _task = "classification"

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, k) probabilities in `classes_` order; a member that never saw a class gives it 0."""
        preds = self._member_predictions(X)
        if self.meta_ is None:
            return _blend(preds, self.weights_)
        return _meta_proba(self.meta_, _meta_features(preds, self._task), self.classes_)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class EnsembleRegressor(RegressorMixin, _Ensemble):
    """Member pipelines' predictions, averaged with weights or combined by ridge regression."""

    _task = "regression"

    def predict(self, X: Any) -> np.ndarray:
        preds = self._member_predictions(X)
        if self.meta_ is None:
            return _blend(preds, self.weights_)
        return self.meta_.predict(_meta_features(preds, self._task))
