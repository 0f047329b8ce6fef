"""CatBoost and XGBoost as scikit-learn estimators that AutoML drives like LightGBM.

`BoostedClassifier` / `BoostedRegressor` wrap an unfitted CatBoost or XGBoost estimator (the
`estimator` parameter; its hyperparameters are reachable as `estimator__depth` and so on). They
give both libraries one interface:

- class labels of any type (strings too), encoded as 0..K-1 for the library; `classes_` holds them;
- `fit(X, y, eval_set=(X_val, y_val), early_stopping_rounds=50, should_stop=callable)`: early
  stopping on the validation rows, and a stop signal polled after every boosting round, so a time
  budget ends training with the trees grown so far;
- `n_estimators_`: the boosting rounds the fitted model predicts with (the best one when early-stopped);
- 1-D predictions (CatBoost returns (n, 1) class columns).

The fitted booster is kept in the library's native format whenever the wrapper is serialised
(pickle, skops), never as pickled library objects; the model package stores it as a `.cbm` or
`.ubj` file (see forgeml.registry.package). Neither library is imported before it is used.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

# The library estimators a wrapper may hold, by public import path: the only classes rebuilt on load.
MODEL_CLASSES = {
    "catboost.CatBoostClassifier": "catboost",
    "catboost.CatBoostRegressor": "catboost",
    "xgboost.XGBClassifier": "xgboost",
    "xgboost.XGBRegressor": "xgboost",
}
MODEL_FORMATS = {"catboost": "cbm", "xgboost": "ubj"}  # native file format of each library
StopFn = Callable[[], bool]


def model_class_path(estimator: Any) -> str:
    """'catboost.CatBoostClassifier' for a CatBoost classifier, ...; TypeError for other estimators."""
    cls = type(estimator)
    path = f"{cls.__module__.split('.')[0]}.{cls.__name__}"
    if path not in MODEL_CLASSES:
        allowed = ", ".join(MODEL_CLASSES)
        raise TypeError(f"forgeml's boosting wrappers take one of {allowed}; got {cls.__module__}.{cls.__name__}")
    return path


def library_of(estimator: Any) -> str:
    """'catboost' or 'xgboost': the library `estimator` comes from."""
    return MODEL_CLASSES[model_class_path(estimator)]


def model_class(path: str) -> type:
    """The library class named by `path` (one of MODEL_CLASSES); ValueError for anything else."""
    if path not in MODEL_CLASSES:
        raise ValueError(f"unexpected boosting model class {path!r} (expected one of {', '.join(MODEL_CLASSES)})")
    from importlib import import_module

    module, _, name = path.partition(".")
    return getattr(import_module(module), name)


def save_model_file(fitted: Any, path: Path) -> None:
    """Write a fitted CatBoost / XGBoost estimator to `path` in its library's native format."""
    if library_of(fitted) == "catboost":
        fitted.save_model(str(path), format="cbm")
    else:
        fitted.save_model(str(path))  # the suffix picks the format: .ubj is Universal Binary JSON


def load_model_bytes(path: str, data: bytes) -> Any:
    """A fitted estimator of class `path` (one of MODEL_CLASSES) from the bytes save_model_file wrote."""
    model = model_class(path)()
    if MODEL_CLASSES[path] == "catboost":
        model.load_model(blob=bytes(data), format="cbm")
    else:
        model.load_model(bytearray(data))
    return model


def _model_bytes(fitted: Any) -> bytes:
    suffix = "." + MODEL_FORMATS[library_of(fitted)]
    with tempfile.TemporaryDirectory(prefix="forgeml-boost-") as folder:
        file = Path(folder) / f"model{suffix}"
        save_model_file(fitted, file)
        return file.read_bytes()


# ----------------------------------------------------------------------------- parameter checks


_SOURCE_PREFIX = re.compile(r"^(\[[\d:]+\]\s*)?[\w./\-]+:\d+:\s*")  # "catboost/.../options.cpp:128: "


def check_params(estimator: Any) -> None:
    """Let the library validate `estimator`'s hyperparameters now; ValueError with its one-line message.

    Both libraries otherwise check them only when training starts, after the data has been prepared.
    """
    library = library_of(estimator)
    if library == "catboost":
        try:  # CatBoost's own checker is private API; without it the check waits for fit
            from catboost.core import _check_train_params, _process_synonyms
        except ImportError:
            return
    try:
        if library == "catboost":
            params = estimator.get_params()
            _process_synonyms(params)
            _check_train_params(params)
        else:
            import xgboost as xgb

            params = {k: v for k, v in estimator.get_xgb_params().items() if v is not None}
            if str(params.get("objective", "")).startswith("multi:"):
                params.setdefault("num_class", 3)
            probe = xgb.DMatrix(np.zeros((2, 1)), label=[0.0, 1.0])
            xgb.Booster(params, [probe]).save_config()  # configuring the learner validates every parameter
    except Exception as exc:  # noqa: BLE001 - CatBoostError, XGBoostError (with a help line after the message)
        lines = [ln for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        raise ValueError(_SOURCE_PREFIX.sub("", lines[0]).strip()) from None


# ----------------------------------------------------------------------------- stopping


class _CatBoostStop:
    """CatBoost callback: returning False from after_iteration ends training with the trees so far."""

    def __init__(self, should_stop: StopFn) -> None:
        self.should_stop = should_stop

    def after_iteration(self, info: Any) -> bool:
        return not self.should_stop()


def _xgboost_stop(should_stop: StopFn) -> Any:
    import xgboost as xgb

    class XGBoostStop(xgb.callback.TrainingCallback):
        """XGBoost callback: returning True from after_iteration ends training with the trees so far."""

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            return bool(should_stop())

    return XGBoostStop()


def _fit_catboost(model, X, y, sample_weight, val, rounds, should_stop) -> int:
    kwargs: dict[str, Any] = {"sample_weight": sample_weight}
    if val is not None:
        kwargs.update(eval_set=val, early_stopping_rounds=int(rounds), use_best_model=True)
    if should_stop is not None:
        kwargs["callbacks"] = [_CatBoostStop(should_stop)]
    model.fit(X, y, **kwargs)
    return int(model.tree_count_)  # use_best_model already cut the model to its best iteration


def _fit_xgboost(model, X, y, sample_weight, val, rounds, should_stop) -> int:
    import xgboost as xgb

    # Early stopping goes first: XGBoost stops asking callbacks once one says stop, and the best
    # iteration must be recorded in the round the stop signal comes.
    callbacks = [xgb.callback.EarlyStopping(rounds=int(rounds))] if val is not None else []
    if should_stop is not None:
        callbacks.append(_xgboost_stop(should_stop))
    model.set_params(callbacks=callbacks or None, early_stopping_rounds=None)
    try:
        model.fit(X, y, sample_weight=sample_weight, eval_set=[val] if val is not None else None, verbose=False)
    finally:
        model.set_params(callbacks=None)  # no closures left in the fitted model
    if val is not None:
        return int(model.best_iteration) + 1  # predict uses the trees up to the best iteration
    return int(model.get_booster().num_boosted_rounds())


# ----------------------------------------------------------------------------- the estimators


class _Boosted(BaseEstimator):
    """What the classifier and the regressor share: fitting, stopping and native serialisation."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def _targets(self, y: Any) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def _eval_rows(self, X_val: Any, y_val: Any) -> tuple[Any, np.ndarray] | None:  # pragma: no cover
        raise NotImplementedError

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        sample_weight: Any = None,
        eval_set: tuple[Any, Any] | None = None,
        early_stopping_rounds: int | None = None,
        should_stop: StopFn | None = None,
    ) -> _Boosted:
        """Fit a clone of `estimator` on X (n, d) and y (n,).

        eval_set: (X_val, y_val); with early_stopping_rounds, training stops after that many rounds
        without improvement on it and the model keeps its best iteration.
        should_stop: called after every boosting round; True ends training with the trees grown so far.
        """
        if self.estimator is None:
            raise ValueError(f"{type(self).__name__} needs an estimator: a CatBoost or XGBoost estimator, unfitted")
        library = library_of(self.estimator)
        target = self._targets(y)
        val = None
        if eval_set is not None and early_stopping_rounds:
            val = self._eval_rows(*eval_set)
        model = clone(self.estimator)
        fit = _fit_catboost if library == "catboost" else _fit_xgboost
        self.n_estimators_ = fit(model, X, target, sample_weight, val, early_stopping_rounds, should_stop)
        self.estimator_ = model
        self.n_features_in_ = int(X.shape[1])
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = True
        return tags

    # Serialised state holds the library estimator as its class path and parameters, and the fitted
    # model as native bytes: pickle and skops then see only plain values, never library objects.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        if self.estimator is not None:
            state["estimator"] = {"class": model_class_path(self.estimator),
                                  "params": self.estimator.get_params(deep=False)}
        if "estimator_" in state:
            state["estimator_"] = {"class": model_class_path(self.estimator_), "model": _model_bytes(self.estimator_)}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        template = state.get("estimator")
        if isinstance(template, dict):
            state["estimator"] = model_class(str(template["class"]))(**template["params"])
        fitted = state.get("estimator_")
        if isinstance(fitted, dict):
            state["estimator_"] = load_model_bytes(str(fitted["class"]), fitted["model"])
        super().__setstate__(state)


class BoostedClassifier(ClassifierMixin, _Boosted):
    """A CatBoost or XGBoost classifier on labels of any type; see the module docstring."""

    def _targets(self, y: Any) -> np.ndarray:
        from sklearn.preprocessing import LabelEncoder

        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y; got only {self.classes_.tolist()}")
        return encoder.transform(y)

    def _eval_rows(self, X_val: Any, y_val: Any) -> tuple[Any, np.ndarray] | None:
        # Rows of a class the training rows lack cannot be scored by the model; they are left out.
        labels = np.asarray(y_val)
        known = np.isin(labels, self.classes_)
        if not known.any():
            return None
        if not known.all():
            X_val, labels = X_val[known], labels[known]
        return X_val, np.searchsorted(self.classes_, labels)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, n_classes), columns in `classes_` order."""
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict_proba(X), dtype=float)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class label of each row (n,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class BoostedRegressor(RegressorMixin, _Boosted):
    """A CatBoost or XGBoost regressor; see the module docstring."""

    def _targets(self, y: Any) -> np.ndarray:
        return np.asarray(y, dtype=float)

    def _eval_rows(self, X_val: Any, y_val: Any) -> tuple[Any, np.ndarray] | None:
        return X_val, np.asarray(y_val, dtype=float)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values (n,)."""
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict(X), dtype=float).ravel()


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)
