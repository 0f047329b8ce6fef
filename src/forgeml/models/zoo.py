"""The model zoo: a registry of model families, each a factory of scikit-learn–compatible estimators.

A family knows which tasks it serves, its default hyperparameters, its search space (used by
tuning), whether it wants scaled inputs, how costly it is (AutoML tries cheap strong families
first) and above which size it is not worth trying. Add a family with `register(Family(...))`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forgeml.errors import SpecError, did_you_mean

# ----------------------------------------------------------------------------- search spaces


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]


Space = dict[str, Float | Int | Choice]
COST_ROWS = 10_000  # the size at which Family.cost is stated


@dataclass(frozen=True)
class Family:
    """A model family.

    build(task, params, seed) returns an unfitted estimator with `params` (defaults already merged).
    cost: relative fit cost (1 = a linear model); AutoML orders by `priority`, then uses cost to skip
    families that would not finish within the remaining budget.
    max_rows: above this many training rows the family is skipped by AutoML (None: no guard).
    grow: for ensembles fitted with warm_start, the parameter that sets their size; AutoML grows them in
    steps and stops when the candidate's deadline comes, so a slow forest cannot overrun the budget.
    """

    name: str
    tasks: tuple[str, ...]
    build: Callable[[str, dict[str, Any], int], Any]
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> params
    space: Space = field(default_factory=dict)
    conditions: dict[str, dict[str, tuple[Any, ...]]] = field(default_factory=dict)  # param -> {param: values it needs}
    scale: bool = False
    sparse_ok: bool = True
    priority: int = 50
    cost: float = 1.0
    max_rows: int | None = None
    grow: str | None = None  # the size parameter of an ensemble that can be grown in steps (warm_start)
    auto: bool = True  # tried by `models: auto` on tables (image and sequence families are not)
    neural: bool = False  # trained by forgeml's PyTorch trainer: takes the spec's `neural` section as params
    inputs: str = "table"  # table | image | sequence: what the family reads (see forgeml.data.prepare)
    cost_exponent: float = 1.0  # how its fit time grows with rows (kernel SVM: 2); `cost` holds at 10,000 rows

    def cost_at(self, rows: int) -> float:
        """Relative cost at `rows` training rows: `cost` at 10,000 rows, scaled by the fit's growth in rows
        beyond a linear model's (a quadratic kernel SVM is cheap on 1,000 rows and dear on 10,000)."""
        return self.cost * (max(rows, 1) / COST_ROWS) ** (self.cost_exponent - 1.0)
    description: str = ""

    def make(self, task: str, params: dict[str, Any] | None = None, seed: int = 0) -> Any:
        """An unfitted estimator for `task`, defaults overridden by `params`; bad params raise SpecError."""
        if task not in self.tasks:
            raise SpecError(f"model family '{self.name}' does not do {task} (it does: {', '.join(self.tasks)})")
        merged = {**self.defaults.get(task, {}), **(params or {})}
        try:
            estimator = self.build(task, merged, seed)
        except TypeError as exc:
            raise SpecError(f"invalid hyperparameters for '{self.name}': {exc}") from None
        _check_params(self.name, estimator)
        return estimator


def _check_params(family: str, estimator: Any) -> None:
    """Run scikit-learn's declarative parameter validation now, so a bad spec fails before training."""
    validate = getattr(estimator, "_validate_params", None)
    if validate is None or not hasattr(estimator, "_parameter_constraints"):
        return
    try:
        validate()
    except ValueError as exc:  # sklearn's InvalidParameterError
        raise SpecError(f"invalid hyperparameter for '{family}': {exc}") from None


def _only(params: dict[str, Any], allowed: set[str], family: str) -> dict[str, Any]:
    unknown = sorted(set(params) - allowed)
    if unknown:
        bad = unknown[0]
        raise SpecError(
            f"unknown hyperparameter '{bad}' for '{family}'{did_you_mean(bad, allowed)} (allowed: {', '.join(sorted(allowed))})"
        )
    return params


def _direct(cls_by_task: dict[str, Callable[..., Any]], family: str, seeded: bool = True, threads: bool = False):
    """A build function passing params straight to one estimator class per task, checking their names."""

    def build(task: str, params: dict[str, Any], seed: int) -> Any:
        cls = cls_by_task[task]
        allowed = set(cls().get_params())
        kwargs = dict(_only(params, allowed, family))
        if seeded and "random_state" in allowed:
            kwargs.setdefault("random_state", seed)
        if threads and "n_jobs" in allowed:
            kwargs.setdefault("n_jobs", -1)
        return cls(**kwargs)

    return build


# ----------------------------------------------------------------------------- families


def _linear(task: str, params: dict[str, Any], seed: int) -> Any:
    from sklearn import linear_model as lm

    params = dict(_only(params, {"penalty", "C", "alpha", "l1_ratio", "max_iter", "class_weight", "tol"}, "linear"))
    penalty = params.pop("penalty", "l2")
    if penalty not in ("l2", "l1", "elasticnet", "none"):
        raise SpecError(f"linear: penalty must be one of l2, l1, elasticnet, none (got {penalty!r})")
    max_iter = params.pop("max_iter", 1000)
    if task == "classification":
        if "alpha" in params:
            raise SpecError("linear: use C (inverse regularisation strength) for classification, not alpha")
        ratio = {"l2": 0.0, "l1": 1.0, "none": 0.0}.get(penalty, params.pop("l1_ratio", 0.5))
        params.pop("l1_ratio", None)
        C = np.inf if penalty == "none" else params.pop("C", 1.0)
        solver = "saga" if ratio > 0 else "lbfgs"
        return lm.LogisticRegression(C=C, l1_ratio=ratio, solver=solver, max_iter=max_iter, random_state=seed, **params)
    if "C" in params or "class_weight" in params:
        raise SpecError("linear: use alpha (regularisation strength) for regression, not C or class_weight")
    alpha = params.pop("alpha", 1.0)
    if penalty == "none":
        return lm.LinearRegression()
    if penalty == "l2":
        return lm.Ridge(alpha=alpha, random_state=seed, max_iter=max_iter, **params)
    if penalty == "l1":
        return lm.Lasso(alpha=alpha, random_state=seed, max_iter=max_iter, **params)
    return lm.ElasticNet(alpha=alpha, l1_ratio=params.pop("l1_ratio", 0.5), random_state=seed, max_iter=max_iter, **params)


def _svm(task: str, params: dict[str, Any], seed: int) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC, SVR

    if task == "classification":
        svc = SVC(**{"random_state": seed, **_only(params, set(SVC().get_params()) - {"probability"}, "svm")})
        _check_params("svm", svc)
        # Platt scaling on internal folds, one final SVC: what SVC(probability=True) did, without its deprecation
        return CalibratedClassifierCV(svc, cv=3, ensemble=False)
    return SVR(**_only(params, set(SVR().get_params()), "svm"))


def _linear_svm(task: str, params: dict[str, Any], seed: int) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC, LinearSVR

    if task == "classification":
        svc = LinearSVC(**{"random_state": seed, **_only(params, set(LinearSVC().get_params()), "linear_svm")})
        _check_params("linear_svm", svc)
        return CalibratedClassifierCV(svc, cv=3)  # calibrated, so it has predict_proba
    return LinearSVR(**{"random_state": seed, **_only(params, set(LinearSVR().get_params()), "linear_svm")})


def _lightgbm(task: str, params: dict[str, Any], seed: int) -> Any:
    import lightgbm as lgb

    cls = lgb.LGBMClassifier if task == "classification" else lgb.LGBMRegressor
    allowed = set(cls().get_params()) | {"early_stopping_rounds"}
    params = dict(_only(params, allowed, "lightgbm"))
    params.pop("early_stopping_rounds", None)  # read by the fitting loop, not the estimator
    return cls(**{"random_state": seed, "n_jobs": -1, "verbose": -1, **params})


# CatBoost takes several names for one parameter; forgeml takes one, so defaults and user values never clash.
_CATBOOST_SYNONYMS = {
    "iterations": "n_estimators", "num_boost_round": "n_estimators", "num_trees": "n_estimators",
    "eta": "learning_rate", "max_depth": "depth", "reg_lambda": "l2_leaf_reg", "random_state": "random_seed",
    "n_jobs": "thread_count", "colsample_bylevel": "rsm", "max_bin": "border_count",
    "min_child_samples": "min_data_in_leaf", "num_leaves": "max_leaves", "od_wait": "early_stopping_rounds",
}
# Not hyperparameters: console output and training files (forgeml's to manage), callbacks (the fitting
# loop's) and column roles (forgeml's preprocessing hands CatBoost a numeric matrix).
_CATBOOST_NOT_PARAMS = {"verbose", "silent", "verbose_eval", "logging_level", "metric_period", "log_cout", "log_cerr",
                        "train_dir", "allow_writing_files", "save_snapshot", "snapshot_file", "snapshot_interval",
                        "callback", "cat_features", "text_features", "embedding_features"}


def _boosted(task: str, model: Any, family: str) -> Any:
    """A CatBoost / XGBoost model in forgeml's wrapper, its hyperparameters checked by the library now."""
    from forgeml.models.boosting import BoostedClassifier, BoostedRegressor, check_params

    try:
        check_params(model)
    except ValueError as exc:
        raise SpecError(f"invalid hyperparameter for '{family}': {exc}") from None
    return (BoostedClassifier if task == "classification" else BoostedRegressor)(model)


def _catboost(task: str, params: dict[str, Any], seed: int) -> Any:
    import inspect

    import catboost

    from forgeml.models.boosting import usable_cores

    for alias, name in _CATBOOST_SYNONYMS.items():
        if alias in params:
            raise SpecError(f"catboost: use '{name}' for '{alias}' (forgeml takes one name per parameter; "
                            f"got {alias}={params[alias]!r})")
    cls = catboost.CatBoostClassifier if task == "classification" else catboost.CatBoostRegressor
    allowed = set(inspect.signature(cls).parameters) - set(_CATBOOST_SYNONYMS) - _CATBOOST_NOT_PARAMS
    params = dict(_only(params, allowed, "catboost"))
    params.pop("early_stopping_rounds", None)  # read by the fitting loop, not the estimator
    model = cls(**{"random_seed": seed, "thread_count": usable_cores(), **params,
                   "logging_level": "Silent", "allow_writing_files": False})
    return _boosted(task, model, "catboost")


def _xgboost(task: str, params: dict[str, Any], seed: int) -> Any:
    import xgboost as xgb

    from forgeml.models.boosting import usable_cores

    cls = xgb.XGBClassifier if task == "classification" else xgb.XGBRegressor
    allowed = set(cls().get_params()) - {"callbacks", "verbosity"}  # the fitting loop sets callbacks
    params = dict(_only(params, allowed, "xgboost"))
    params.pop("early_stopping_rounds", None)  # read by the fitting loop, not the estimator
    model = cls(**{"random_state": seed, "n_jobs": usable_cores(), "tree_method": "hist", **params, "verbosity": 0})
    return _boosted(task, model, "xgboost")


def _sk(module: str, name: str) -> Callable[..., Any]:
    """A lazily imported scikit-learn class (keeps `import forgeml` free of heavy imports)."""

    def factory(**kwargs: Any) -> Any:
        from importlib import import_module

        return getattr(import_module(module), name)(**kwargs)

    factory.__name__ = name
    return factory


_BOTH = ("classification", "regression")
_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family to the zoo (replacing one of the same name)."""
    _FAMILIES[family.name] = family
    return family


register(Family(
    "lightgbm", _BOTH, _lightgbm,
    defaults={t: {"n_estimators": 2000, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 10,
                  "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "early_stopping_rounds": 50}
              for t in _BOTH},
    space={"learning_rate": Float(0.005, 0.3, log=True), "num_leaves": Int(4, 256, log=True),
           "min_child_samples": Int(2, 100, log=True), "subsample": Float(0.5, 1.0),
           "colsample_bytree": Float(0.3, 1.0), "reg_lambda": Float(1e-8, 10.0, log=True),
           "reg_alpha": Float(1e-8, 10.0, log=True)},
    priority=10, cost=3.0, description="LightGBM gradient-boosted trees, early-stopped on validation",
))
register(Family(
    "catboost", _BOTH, _catboost,
    # CatBoost's loss keeps creeping down on small separable data, where early stopping waits long: 1000 trees
    # at most (its own default) bound that; MVS bootstrap takes `subsample` for every loss, multiclass included.
    defaults={t: {"n_estimators": 1000, "learning_rate": 0.1, "depth": 6, "l2_leaf_reg": 3.0, "bootstrap_type": "MVS",
                  "subsample": 0.8, "early_stopping_rounds": 50} for t in _BOTH},
    space={"learning_rate": Float(0.01, 0.3, log=True), "depth": Int(3, 10), "l2_leaf_reg": Float(0.1, 30.0, log=True),
           "random_strength": Float(0.01, 10.0, log=True), "subsample": Float(0.5, 1.0), "rsm": Float(0.3, 1.0)},
    priority=12, cost=6.0, description="CatBoost gradient-boosted oblivious trees, early-stopped on validation",
))
register(Family(
    "xgboost", _BOTH, _xgboost,
    defaults={t: {"n_estimators": 2000, "learning_rate": 0.05, "max_depth": 6, "min_child_weight": 1.0,
                  "subsample": 0.8, "colsample_bytree": 0.8, "early_stopping_rounds": 50} for t in _BOTH},
    space={"learning_rate": Float(0.005, 0.3, log=True), "max_depth": Int(2, 12),
           "min_child_weight": Float(0.1, 50.0, log=True), "subsample": Float(0.5, 1.0),
           "colsample_bytree": Float(0.3, 1.0), "reg_lambda": Float(1e-8, 10.0, log=True),
           "reg_alpha": Float(1e-8, 10.0, log=True), "gamma": Float(1e-8, 5.0, log=True)},
    priority=18, cost=4.0, description="XGBoost histogram gradient-boosted trees, early-stopped on validation",
))
register(Family(
    "hist_gradient_boosting", _BOTH,
    _direct({"classification": _sk("sklearn.ensemble", "HistGradientBoostingClassifier"),
             "regression": _sk("sklearn.ensemble", "HistGradientBoostingRegressor")}, "hist_gradient_boosting"),
    space={"learning_rate": Float(0.01, 0.3, log=True), "max_leaf_nodes": Int(8, 128, log=True),
           "min_samples_leaf": Int(2, 100, log=True), "l2_regularization": Float(1e-8, 10.0, log=True),
           "max_features": Float(0.3, 1.0)},
    sparse_ok=False, priority=20, cost=3.0, grow="max_iter",  # boosting rounds added in steps up to the deadline
    description="scikit-learn histogram gradient boosting",
))
register(Family(
    "linear", _BOTH, _linear,
    defaults={"classification": {"penalty": "l2", "C": 1.0}, "regression": {"penalty": "l2", "alpha": 1.0}},
    space={"C": Float(1e-3, 1e3, log=True), "alpha": Float(1e-4, 1e2, log=True),
           "penalty": Choice(("l2", "l1", "elasticnet")), "l1_ratio": Float(0.05, 0.95)},
    conditions={"l1_ratio": {"penalty": ("elasticnet",)}},
    scale=True, priority=15, cost=1.0, description="logistic / ridge / lasso / elastic-net regression",
))
register(Family(
    "random_forest", _BOTH,
    _direct({"classification": _sk("sklearn.ensemble", "RandomForestClassifier"),
             "regression": _sk("sklearn.ensemble", "RandomForestRegressor")}, "random_forest", threads=True),
    defaults={t: {"n_estimators": 300, "max_features": "sqrt" if t == "classification" else 0.5} for t in _BOTH},
    space={"n_estimators": Int(100, 1000, log=True), "max_depth": Int(3, 40), "min_samples_leaf": Int(1, 20),
           "max_features": Float(0.1, 1.0)},
    priority=30, cost=6.0, max_rows=2_000_000, grow="n_estimators", description="random forest",
))
register(Family(
    "extra_trees", _BOTH,
    _direct({"classification": _sk("sklearn.ensemble", "ExtraTreesClassifier"),
             "regression": _sk("sklearn.ensemble", "ExtraTreesRegressor")}, "extra_trees", threads=True),
    defaults={t: {"n_estimators": 300, "max_features": "sqrt" if t == "classification" else 0.7} for t in _BOTH},
    space={"n_estimators": Int(100, 1000, log=True), "max_depth": Int(3, 40), "min_samples_leaf": Int(1, 20),
           "max_features": Float(0.1, 1.0)},
    priority=35, cost=4.0, max_rows=2_000_000, grow="n_estimators", description="extremely randomised trees",
))
register(Family(
    "knn", _BOTH,
    _direct({"classification": _sk("sklearn.neighbors", "KNeighborsClassifier"),
             "regression": _sk("sklearn.neighbors", "KNeighborsRegressor")}, "knn", threads=True),
    defaults={t: {"n_neighbors": 10, "weights": "distance"} for t in _BOTH},
    space={"n_neighbors": Int(1, 100, log=True), "weights": Choice(("uniform", "distance")), "p": Choice((1, 2))},
    scale=True, priority=50, cost=2.0, max_rows=100_000, description="k-nearest neighbours (prediction cost grows with rows)",
))
register(Family(
    "naive_bayes", ("classification",),
    _direct({"classification": _sk("sklearn.naive_bayes", "GaussianNB")}, "naive_bayes", seeded=False),
    space={"var_smoothing": Float(1e-12, 1e-3, log=True)},
    sparse_ok=False, priority=60, cost=0.5, description="Gaussian naive Bayes",
))
register(Family(
    "decision_tree", _BOTH,
    _direct({"classification": _sk("sklearn.tree", "DecisionTreeClassifier"),
             "regression": _sk("sklearn.tree", "DecisionTreeRegressor")}, "decision_tree"),
    defaults={t: {"min_samples_leaf": 5} for t in _BOTH},
    space={"max_depth": Int(2, 30), "min_samples_leaf": Int(1, 50, log=True), "ccp_alpha": Float(1e-6, 1e-1, log=True)},
    priority=70, cost=1.0, description="a single decision tree (interpretable)",
))
register(Family(
    "linear_svm", _BOTH, _linear_svm,
    defaults={"classification": {"C": 1.0}, "regression": {"C": 1.0}},
    space={"C": Float(1e-3, 1e3, log=True)},
    scale=True, priority=65, cost=2.0, max_rows=500_000, description="linear support vector machine",
))
register(Family(
    "svm", _BOTH, _svm,
    defaults={t: {"C": 1.0, "kernel": "rbf", "gamma": "scale"} for t in _BOTH},
    space={"C": Float(1e-2, 1e3, log=True), "gamma": Float(1e-4, 1.0, log=True)},
    scale=True, priority=80, cost=10.0, cost_exponent=2.0, max_rows=10_000,
    description="kernel support vector machine (quadratic cost: guarded at 10k rows)",
))


# ----------------------------------------------------------------------------- neural families


def _neural(architecture: str) -> Callable[[str, dict[str, Any], int], Any]:
    """A build function for NeuralClassifier / NeuralRegressor with `architecture` fixed.

    Params are the estimator's: architecture hyperparameters and the NeuralSpec fields (the pipeline
    passes the spec's `neural` section). Neither torch nor forgeml.models.neural is imported before a
    model is built; without torch, building says how to install it.
    """

    def build(task: str, params: dict[str, Any], seed: int) -> Any:
        from importlib.util import find_spec

        if find_spec("torch") is None:
            raise SpecError(f"model family '{architecture}' needs PyTorch: pip install 'forgeml[neural]'")
        from forgeml.models.neural import NeuralClassifier, NeuralRegressor

        cls = NeuralClassifier if task == "classification" else NeuralRegressor
        allowed = set(cls().get_params()) - {"architecture"}
        kwargs = {"random_state": seed, **_only(params, allowed, architecture)}
        return cls(architecture=architecture, **kwargs)

    return build


register(Family(
    "mlp", _BOTH, _neural("mlp"),
    defaults={t: {"hidden_sizes": [64, 32], "dropout": 0.2, "batch_size": 64} for t in _BOTH},  # small tables
    space={"learning_rate": Float(1e-4, 1e-2, log=True),
           "hidden_sizes": Choice(((64,), (128, 64), (256, 128), (256, 128, 64))),
           "dropout": Float(0.0, 0.5), "weight_decay": Float(1e-6, 1e-2, log=True),
           "batch_size": Choice((32, 64, 128, 256))},
    scale=True, sparse_ok=False, priority=90, cost=8.0, neural=True,
    description="multilayer perceptron (PyTorch) with batch norm and dropout, early-stopped on held-out rows",
))
# The families below read images or sequences whole, not tables: `auto=False` keeps `models: auto` from trying
# them on plain tables; AutoML puts the cnn first for data with an image column and the rnn first for data
# with a sequence column, and a spec can name any of them.
register(Family(
    "cnn", _BOTH, _neural("cnn"),
    space={"learning_rate": Float(1e-4, 1e-2, log=True), "channels": Choice(((16, 32), (32, 64), (32, 64, 128))),
           "dropout": Float(0.0, 0.5), "batch_size": Choice((32, 64, 128))},
    sparse_ok=False, priority=1000, cost=30.0, auto=False, neural=True, inputs="image",
    description="convolutional network (PyTorch) for images: (N, C, H, W), (N, H, W) or flat pixels with image_shape",
))
register(Family(
    "rnn", _BOTH, _neural("rnn"),
    space={"learning_rate": Float(1e-4, 1e-2, log=True), "hidden_size": Choice((32, 64, 128)),
           "num_layers": Int(1, 3), "rnn_type": Choice(("lstm", "gru")), "bidirectional": Choice((False, True)),
           "dropout": Float(0.0, 0.5)},
    sparse_ok=False, priority=1000, cost=30.0, auto=False, neural=True, inputs="sequence",
    description="LSTM / GRU (PyTorch) for sequences: token ids, numeric steps (N, T, F), or texts with a tokenizer",
))
register(Family(
    "transformer", _BOTH, _neural("transformer"),
    space={"learning_rate": Float(1e-4, 3e-3, log=True), "d_model": Choice((32, 64, 128)), "num_layers": Int(1, 4),
           "dropout": Float(0.0, 0.3)},
    sparse_ok=False, priority=1000, cost=40.0, auto=False, neural=True, inputs="sequence",
    description="Transformer encoder (PyTorch) for sequences: token ids, numeric steps (N, T, F), or texts with a tokenizer",
))


def family_names() -> list[str]:
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    """The family called `name`; SpecError with a suggestion when unknown."""
    try:
        return _FAMILIES[name]
    except KeyError:
        names = family_names()
        raise SpecError(f"unknown model family '{name}'{did_you_mean(name, names)} (known: {', '.join(names)})") from None


def auto_families(task: str, kinds: dict[str, str] | None = None) -> list[Family]:
    """Families AutoML tries for `task`, in the order it tries them (strong and cheap first).

    With the feature kinds known: data with an image column tries the cnn first, data with a sequence
    column the rnn first (the tabular families follow, on pixels or sequence statistics)."""
    chosen = sorted((f for f in _FAMILIES.values() if task in f.tasks and f.auto), key=lambda f: (f.priority, f.name))
    present = set((kinds or {}).values())
    first = [_FAMILIES[name] for kind, name in (("image", "cnn"), ("sequence", "rnn")) if kind in present]
    return first + chosen
