"""forgeml's AutoML as scikit-learn estimators: `AutoClassifier` and `AutoRegressor`.

`fit` runs the model selection of `forgeml.train` (the same candidate families, preprocessing, budget
and cross-validation) on arrays, lists or DataFrames with categorical, text and date columns, and keeps
the winner refitted on every row. Unlike `train` it registers nothing, writes no report, opens no job
folder and holds out no test split: the caller evaluates, e.g. with `cross_val_score`. So it can sit in a
`Pipeline`, `cross_val_score` or `GridSearchCV` like any scikit-learn estimator.
"""

from __future__ import annotations

import logging
import numbers
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import assert_all_finite, check_random_state, column_or_1d
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from forgeml.errors import DataError
from forgeml.spec import Spec, TrainingSpec, spec_from_dict

log = logging.getLogger(__name__)

# No test split: the caller evaluates. Holdout selection (large data) validates on 15 % of the rows.
_SPLIT = {"train": 0.85, "validation": 0.15, "test": 0.0}
_TRAINING = TrainingSpec.model_fields
MIN_SAMPLES = 4  # two cross-validation folds of two rows


class InputError(DataError, ValueError):
    """Data that cannot train an AutoML model: a forgeml DataError that is also the ValueError scikit-learn expects."""


class _AutoEstimator(BaseEstimator):
    """What AutoClassifier and AutoRegressor share: the parameters, input checks and the AutoML run."""

    _task: str

    def __init__(
        self,
        time_limit: float | None = _TRAINING["time_limit"].default,
        *,
        models: str | list[str | dict[str, Any]] = "auto",
        metric: str | None = _TRAINING["metric"].default,
        validation: str = _TRAINING["validation"].default,
        preset: str | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.time_limit = time_limit
        self.models = models
        self.metric = metric
        self.validation = validation
        self.preset = preset
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # forgeml imputes (and flags) missing values
        tags.input_tags.string = True  # text and categories are encoded by forgeml's preprocessing
        tags.input_tags.categorical = True
        return tags

    # -- fitting ----------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> _AutoEstimator:
        """Select and fit the best model family on (X, y) within `time_limit` seconds; returns self.

        X: (n_samples, n_features) array, list of rows or DataFrame (its column names and dtypes kept).
        """
        from forgeml import __version__
        from forgeml.data.schema import FeatureSchema
        from forgeml.evaluation.metrics import check_metric_fits, default_metric
        from forgeml.model import ForgeModel
        from forgeml.pipeline import _candidates, _leaderboard
        from forgeml.tuning.automl import Deadline, Problem, select_model
        from forgeml.tuning.portfolio import PRESET_SETTINGS

        started = time.monotonic()
        spec = self._spec()
        frame, y = self._check_fit_input(X, y)
        deadline = Deadline(spec.training.time_limit, start=started)
        preset = PRESET_SETTINGS[spec.training.preset]
        kinds = _kinds(frame, typed=isinstance(X, pd.DataFrame))
        features = [c for c in frame.columns if kinds[c] != "identifier"]
        if not features:
            raise InputError(f"every column of X looks like an identifier ({', '.join(frame.columns[:5])}); "
                             "pass feature columns to learn from")
        kinds = {c: kinds[c] for c in features}
        task = self._task
        classes = self.classes_.tolist() if task == "classification" else None
        metric_name = spec.training.metric or default_metric(task, len(classes) if classes else None)
        problem = Problem(task=task, kinds=kinds, preprocessing=spec.preprocessing,
                          metric=check_metric_fits(metric_name, task, len(classes) if classes else None),
                          classes=classes, seed=spec.seed)
        target = _target_name(frame.columns)
        data = frame[features].assign(**{target: y})
        train, validation, folds = self._validation(data, target, spec, kinds, cv=preset.cv)
        selection = select_model(
            _candidates(spec, task, kinds), problem,
            (train[features], train[target]), (validation[features], validation[target]),
            folds=folds, deadline=deadline, reserve=0.0, refit=spec.training.refit, on_event=self._log_event,
            tune_share=preset.tune_share if spec.models == "auto" else 0.0, ensemble=preset.ensemble,
        )
        prepare = getattr(selection.pipeline, "named_steps", {}).get("prepare")
        used = [c for c in features if c in set(getattr(prepare, "feature_names_in_", features))]
        self.model_ = ForgeModel(
            pipeline=selection.pipeline, task=task, target=target,
            schema=FeatureSchema.from_frame(frame[used], {c: kinds[c] for c in used}),
            family=selection.winner.family, params=selection.winner.params, classes=classes,
            metadata={"name": type(self).__name__, "metric": metric_name, "forgeml_version": __version__},
        )
        self.leaderboard_ = _leaderboard(selection, problem.metric)
        self.best_family_ = selection.winner.family
        self.metric_ = metric_name
        return self

    def _spec(self) -> Spec:
        """The parameters as a forgeml spec, so they are validated (and explained) as `train` does it."""
        models = list(self.models) if isinstance(self.models, tuple) else self.models
        training: dict[str, Any] = {"time_limit": self.time_limit, "metric": self.metric, "validation": self.validation}
        if self.preset is not None:
            training["preset"] = self.preset
        raw = {"seed": _seed(self.random_state), "models": models, "split": dict(_SPLIT), "training": training,
               "data": {"task": self._task}, "output": {"report": False}}
        return spec_from_dict(raw, where=f" ({type(self).__name__} parameters)")

    def _validation(self, data: pd.DataFrame, target: str, spec: Spec, kinds: dict[str, str], cv: bool):
        """(train, validation, folds) as `train` chooses them: k-fold CV over every row when asked, or with
        validation auto for small tables (unless the preset scores on a holdout); a stratified holdout otherwise."""
        from forgeml.data.split import cv_folds, split_frame

        mode = spec.training.validation
        whole = any(kind in ("image", "sequence") for kind in kinds.values())
        if mode == "cv" or (mode == "auto" and cv and len(data) <= spec.training.cv_max_rows and not whole):
            # Stratified folds need every class in every fold: fewer folds when a class is rare, plain
            # k-fold (and out-of-fold predictions that never saw the class) for a single-sample class.
            rarest = int(data[target].value_counts().min()) if self._task == "classification" else len(data)
            k = min(spec.split.folds, max(2, rarest))
            folds = cv_folds(data, target, spec.split, self._task, spec.split_seed, n_folds=k)
            return data, data.iloc[:0], folds
        parts = split_frame(data, target, spec.split, self._task, spec.split_seed)
        return parts.train, parts.validation, None

    def _log_event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "candidate":
            log.log(logging.INFO if self.verbose else logging.DEBUG, "%s: %s", type(self).__name__, payload)

    # -- input checks -----------------------------------------------------------------------------

    def _check_fit_input(self, X: Any, y: Any) -> tuple[pd.DataFrame, np.ndarray]:
        """X as a DataFrame with the names the model uses, y as a validated 1-d array; sets n_features_in_,
        feature_names_in_ and, for classifiers, classes_."""
        if y is None:
            raise ValueError(f"This {type(self).__name__} estimator requires y to be passed, but the target y is None.")
        frame = self._frame(X, reset=True)
        y = column_or_1d(y, warn=True)
        assert_all_finite(y, input_name="y", estimator_name=type(self).__name__)
        if np.iscomplexobj(y):
            raise ValueError("Complex data not supported")
        check_consistent_length(frame, y)
        y = self._check_target(y)
        if len(y) < MIN_SAMPLES:
            raise InputError(f"{type(self).__name__} needs at least {MIN_SAMPLES} samples to compare models by "
                             f"cross-validation; got n_samples={len(y)}")
        return frame, y

    def _frame(self, X: Any, reset: bool) -> pd.DataFrame:
        """X checked by scikit-learn's rules, as a DataFrame: a DataFrame keeps its columns and dtypes
        (renamed to x0, x1, ... when its names are not all strings); arrays and lists get x0, x1, ..."""
        name = type(self).__name__
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            for axis, what in enumerate(("sample", "feature")):  # scikit-learn's wording for empty data
                if X.shape[axis] == 0:
                    raise ValueError(f"Found array with 0 {what}(s) (shape={X.shape}) while a minimum of 1 is "
                                     f"required by {name}.")
            frame = X
        else:
            array = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite="allow-nan")
            if np.iscomplexobj(array):
                raise ValueError("Complex data not supported")
            # Object and string arrays may hold numbers, categories or text: pandas types each column.
            frame = pd.DataFrame(array).infer_objects() if array.dtype.kind in "OUS" else pd.DataFrame(array)
            if array.dtype.kind in "US":
                frame = frame.astype(object).apply(_numbers_if_all)
        if reset:
            names = getattr(self, "feature_names_in_", None)
            self._columns_ = [str(c) for c in names] if names is not None else [f"x{i}" for i in range(frame.shape[1])]
        return frame.set_axis(self._columns_, axis=1).reset_index(drop=True)

    def _check_target(self, y: np.ndarray) -> np.ndarray:
        """y validated for the task (classifiers set classes_ here)."""
        raise NotImplementedError

    # -- prediction -------------------------------------------------------------------------------

    def _features(self, X: Any) -> pd.DataFrame:
        return self.model_.schema.validate(self._frame(X, reset=False))


class AutoClassifier(ClassifierMixin, _AutoEstimator):
    """AutoML classifier: picks, fits and refits the best forgeml model family for (X, y) in `time_limit` seconds.

    time_limit: seconds for the whole fit (None: no limit). models: "auto" (the preset's portfolio) or a list
    of family names / {"family", "params"} dicts. metric: what selection optimises (default roc_auc for two
    classes, log_loss for more). validation: "auto" (k-fold CV up to 20,000 rows, holdout beyond), "cv" or
    "holdout". preset: "fast" | "balanced" | "best" as in the spec's training.preset (None: its default).
    random_state: an int makes fits reproducible as long as the time limit decides nothing (with a limit,
    how many candidates and tuning trials fit in it depends on the machine); None draws a seed from NumPy's
    global generator, as scikit-learn does. verbose: log each candidate's score at INFO level (DEBUG
    otherwise) on the `forgeml.estimators` logger.

    Fitted: model_ (a ForgeModel: preprocessing + estimator, with its input schema), classes_, n_features_in_,
    feature_names_in_ (DataFrames with string column names), leaderboard_, best_family_, metric_.
    Takes numbers, categories, text and dates, with missing values; labels may be strings. Needs 4 samples
    and 2 classes at least. Passes every `check_estimator` check: none is excluded, no tag switches one off.
    """

    _task = "classification"

    def _check_target(self, y: np.ndarray) -> np.ndarray:
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise InputError(f"{type(self).__name__} needs at least 2 classes in y; got 1 class ({self.classes_[0]!r})")
        return y

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in `classes_` order."""
        from forgeml.tuning.automl import aligned_proba

        check_is_fitted(self, "model_")
        return aligned_proba(self.model_.pipeline, self._features(X), self.classes_.tolist())

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row, shape (n_samples,)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class AutoRegressor(RegressorMixin, _AutoEstimator):
    """AutoML regressor: picks, fits and refits the best forgeml model family for (X, y) in `time_limit` seconds.

    Parameters and fitted attributes as AutoClassifier's (no classes_; metric defaults to rmse). y must be
    numeric. Passes every `check_estimator` check: none is excluded, no tag switches one off.
    """

    _task = "regression"

    def _check_target(self, y: np.ndarray) -> np.ndarray:
        return y.astype(np.float64) if y.dtype.kind in "OUSb" else y

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, shape (n_samples,)."""
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.pipeline.predict(self._features(X)), dtype=np.float64)


def _seed(random_state: Any) -> int:
    """The spec seed: an int random_state as is, else a draw from its generator (None: NumPy's global one)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _kinds(frame: pd.DataFrame, typed: bool) -> dict[str, str]:
    """The kind of each column: a numeric array's columns are numeric; forgeml infers the others'."""
    from forgeml.data.profile import infer_kinds

    numeric = all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in frame.dtypes)
    if not typed and numeric:
        return {c: "numeric" for c in frame.columns}
    return infer_kinds(frame)


def _target_name(columns: Any) -> str:
    """A name for the target column that no feature column has."""
    name = "__target__"
    while name in set(columns):
        name = f"_{name}_"
    return name


def _numbers_if_all(column: pd.Series) -> pd.Series:
    """A text column of an array as numbers when every value is a number written as text."""
    converted = pd.to_numeric(column, errors="coerce")
    return converted if converted.notna().sum() == column.notna().sum() else column
