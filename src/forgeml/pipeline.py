"""The stages wired together: load → profile → split → fit → evaluate → register → report.

These functions are the Python API (`forgeml.train`, `forgeml.load`, ...) and the CLI calls them
too. Everything a user can get wrong is checked before the first write to the registry; a
failure after that deletes the half-made run, so the registry never holds a partial version.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forgeml import __version__
from forgeml.errors import DataError, Interrupted, SpecError, did_you_mean
from forgeml.events import forward_events
from forgeml.model import ForgeModel
from forgeml.spec import Spec, build_spec

log = logging.getLogger(__name__)

EventFn = Callable[[str, dict[str, Any]], None]
TRAIN_EVAL_ROWS = 20_000
IMPORTANCE_MAX_SECONDS = 30.0  # cap for runs without a time limit
REGISTER_SECONDS = 3.5  # importing MLflow, opening (or creating) the store, packaging, registering, the report
DataLike = pd.DataFrame | str | os.PathLike


@dataclass
class TrainResult:
    """What `train` returns: the model, how it was chosen and how good it is."""

    model: ForgeModel
    spec: Spec
    leaderboard: pd.DataFrame
    evaluation: dict[str, dict[str, Any]]  # split -> evaluate_predictions(...) output
    diagnosis: dict[str, Any]
    profile: Any
    metric: str
    name: str
    version: int | None = None
    run_id: str | None = None
    report_path: Path | None = None
    elapsed: float = 0.0
    fit_seconds: float = 0.0  # time spent fitting models (candidates + refit), the rest is overhead
    warnings: list[str] = field(default_factory=list)
    residuals: dict[str, list[float]] | None = field(default=None, repr=False)  # regression: test y_true/y_pred

    @property
    def metrics(self) -> dict[str, float]:
        """Test-split metrics of the final model."""
        return dict(self.evaluation.get("test", {}).get("metrics", {}))

    @property
    def ref(self) -> str | None:
        return f"{self.name}/{self.version}" if self.version is not None else None

    def __repr__(self) -> str:
        score = self.metrics.get(self.metric)
        shown = f"{score:.4f}" if score is not None else "n/a"
        return f"TrainResult({self.ref or self.name}: {self.model.family}, test {self.metric}={shown})"


# ----------------------------------------------------------------------------- train


def _read(data: DataLike | None, spec: Spec) -> tuple[pd.DataFrame, str]:
    from forgeml.data.io import read_table, source_label

    source = data if data is not None else spec.data.source
    if source is None:
        raise SpecError("no data given; pass a file (forgeml train data.csv ...) or set data.source in the spec")
    return read_table(source, query=spec.data.query, sheet=spec.data.sheet), source_label(source)


def _check_columns(df: pd.DataFrame, names: list[str], what: str) -> None:
    for name in names:
        if name not in df.columns:
            raise DataError(f"{what} '{name}' not found in the data{did_you_mean(name, df.columns)}")


def _candidates(spec: Spec, task: str, kinds: dict[str, str]) -> list[tuple[Any, dict[str, Any]]]:
    from forgeml.models.zoo import get_family
    from forgeml.tuning.portfolio import portfolio

    # Neural families take the spec's `neural` section (only what the user set: NeuralSpec keeps the defaults).
    neural = spec.neural.model_dump(mode="json", exclude_unset=True)
    if spec.models == "auto":
        return [(f, {**neural, **p} if f.neural else p, config)
                for f, p, config in portfolio(task, kinds, spec.training.preset) if _available(f)]
    chosen = []
    for choice in spec.models:
        family = get_family(choice.family)
        params = {**neural, **choice.params} if family.neural else choice.params
        family.make(task, params, spec.seed)  # validate hyperparameters before any fitting
        chosen.append((family, params))
    return chosen


def _available(family: Any) -> bool:
    """AutoML leaves out neural families when PyTorch is not installed (asking for one by name says how)."""
    if not family.neural:
        return True
    from importlib.util import find_spec

    return find_spec("torch") is not None


def _class_labels(y: pd.Series) -> list[Any]:
    values = pd.unique(y.dropna())
    try:
        return sorted(values.tolist())
    except TypeError:
        return sorted(values.tolist(), key=str)


def train(
    data: DataLike | None = None,
    *,
    spec: Spec | dict[str, Any] | str | os.PathLike | None = None,
    register: bool = True,
    on_event: EventFn | None = None,
    resume: str | None = None,
    **options: Any,
) -> TrainResult:
    """Train, evaluate and (by default) register a model.

    data: a DataFrame or a path / URL (or set data.source in the spec). options: any key of
    `forgeml.spec.OVERRIDES` plus seed and models, e.g. target="churn", time_limit=60, name="churn".
    resume: the id of an interrupted job (printed when it was interrupted): the run continues with the
    job's own spec on the same data (a DataFrame job needs the same DataFrame again), neural fits from
    their checkpoints; see forgeml/jobs.py.
    """
    from forgeml.data.io import data_fingerprint
    from forgeml.jobs import Job
    from forgeml.tuning.automl import Deadline

    started = time.monotonic()
    emit = on_event or (lambda _e, _p: None)
    job = Job.open(resume) if resume is not None else None
    if job is not None:
        given = sorted(k for k, v in options.items() if v is not None)
        if spec is not None or given:
            raise SpecError(f"a resumed job runs with its own spec; leave out {', '.join(given) or 'spec'} "
                            f"(or train anew without --resume)")
        if data is None and job.record["spec"].get("data", {}).get("source") is None:
            raise DataError(f"job '{job.id}' was started on a DataFrame; pass the same DataFrame: "
                            f"forgeml.train(df, resume='{job.id}')")
        spec = job.record["spec"]
    if isinstance(data, (str, os.PathLike)) and not isinstance(data, pd.DataFrame):
        options.setdefault("source", str(data))
        data = None
    spec = build_spec(spec if not isinstance(spec, os.PathLike) else str(spec), **options)
    deadline = Deadline(spec.training.time_limit, start=started)
    seed = spec.seed
    _seed_everything(seed)

    emit("stage", {"name": "load data"})
    df, source = _read(data, spec)
    fingerprint = {**data_fingerprint(df), "source": source}
    if job is not None:
        job.check_data(fingerprint)
    else:
        # only what was set: a neural family's own defaults must stay its defaults on resume
        job = Job.create(spec.model_dump(mode="json", exclude_unset=True), source, fingerprint)
    try:
        with job.active():
            result = _train(df, spec, fingerprint, register, emit, on_event, started, deadline)
    except (Interrupted, KeyboardInterrupt):
        raise Interrupted(f"training interrupted; resume with: forgeml train --resume {job.id}") from None
    except BaseException:
        job.finish()
        raise
    job.finish()
    return result


def _train(df, spec, fingerprint, register, emit, on_event, started, deadline) -> TrainResult:
    """train() once the data is read and the job opened."""
    from forgeml.data.schema import FeatureSchema
    from forgeml.tuning.automl import select_model

    seed = spec.seed
    prep = _prepare(df, spec, emit)
    task, target, features, kinds, profile, parts = prep.task, prep.target, prep.features, prep.kinds, prep.profile, prep.parts
    classes, metric_name, metric, problem, warnings = prep.classes, prep.metric_name, prep.metric, prep.problem, prep.warnings
    from forgeml.tuning.portfolio import PRESET_SETTINGS

    families = _candidates(spec, task, kinds)
    preset = PRESET_SETTINGS[spec.training.preset]
    trainval, folds = _validation_folds(spec, prep, families)
    limit = spec.training.time_limit
    # kept back from fitting: refit, evaluation, importance and registration
    reserve = 0.0 if limit is None else min(max(REGISTER_SECONDS + 1.0, 0.12 * limit), 0.3 * limit)

    emit("stage", {"name": "fit models", "count": len(families)})
    with forward_events(on_event):  # neural families report their epochs to the same display
        selection = select_model(
            families, problem,
            (parts.train[features], parts.train[target]),
            (parts.validation[features], parts.validation[target]),
            folds=folds, deadline=deadline, reserve=reserve, refit=spec.training.refit, on_event=on_event,
            tune_share=preset.tune_share if spec.models == "auto" else 0.0, ensemble=preset.ensemble,
        )

    threshold = _threshold(selection, problem, parts, features, target, trainval, warnings)
    emit("stage", {"name": "evaluate"})
    prepare = getattr(selection.pipeline, "named_steps", {}).get("prepare")
    used = [c for c in features if c in set(getattr(prepare, "feature_names_in_", features))]  # the model's columns
    evaluation = _evaluate_splits(selection, problem, parts, features, target, trainval)
    diagnosis = _diagnose(evaluation, metric_name, task, parts, target, classes)
    model = ForgeModel(
        pipeline=selection.pipeline, task=task, target=target,
        schema=FeatureSchema.from_frame(parts.train[used], {c: kinds[c] for c in used}),
        family=selection.winner.family, params=selection.winner.params, classes=classes,
        metadata={"name": spec.output.name, "metric": metric_name, "forgeml_version": __version__,
                  **({"threshold": threshold} if threshold is not None else {}),
                  **({"sequence": {"id": spec.data.sequence_id, "time": spec.data.sequence_time}}
                     if spec.data.sequence_id else {}),
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "test_metrics": evaluation.get("test", {}).get("metrics", {})},
    )
    importance = _importance(model, parts, used, target, problem, deadline, keep=REGISTER_SECONDS if register else 0.5)
    result = TrainResult(model=model, spec=spec, leaderboard=_leaderboard(selection, metric),
                         evaluation=evaluation, diagnosis=diagnosis, profile=profile, metric=metric_name,
                         name=spec.output.name, warnings=warnings, fit_seconds=selection.fit_seconds,
                         residuals=_residuals(selection.pipeline, problem, parts.test, features, target, seed))
    if register:
        emit("stage", {"name": "register"})
        _register(result, fingerprint, parts.train[used].head(5), importance)
    elif spec.output.report:
        result.report_path = _write_report(result, fingerprint, importance, None)
    result.elapsed = time.monotonic() - started
    emit("done", {"elapsed": result.elapsed})
    return result


@dataclass
class Prepared:
    """A loaded table checked, profiled and split: what the fit stage (train or tune) starts from."""

    df: pd.DataFrame
    task: str
    target: str
    features: list[str]
    kinds: dict[str, str]
    profile: Any
    parts: Any  # forgeml.data.split parts: train, validation, test frames
    classes: list[Any] | None
    metric_name: str
    problem: Any  # forgeml.tuning.automl.Problem
    warnings: list[str]

    @property
    def metric(self) -> Any:
        return self.problem.metric


def _prepare(df: pd.DataFrame, spec: Spec, emit: EventFn) -> Prepared:
    """Check the columns and the target, profile the features and split the rows (train and tune share it)."""
    from forgeml.data.profile import infer_kinds, profile_table
    from forgeml.data.split import split_frame
    from forgeml.data.target import check_training_data, drop_unlabelled
    from forgeml.evaluation.metrics import check_metric_fits, default_metric, get_metric
    from forgeml.tuning.automl import Problem

    if not spec.data.target and list(df.columns) == ["image", "label"]:  # an image folder: root/<label>/<image>
        spec.data.target = "label"
    if spec.data.sequence_id:  # a long table: one row per sequence, its numeric columns as lists of steps
        from forgeml.data.sequences import collapse_long

        df = collapse_long(df, spec.data.sequence_id, spec.data.sequence_time, spec.data.target)
    _check_columns(df, spec.data.ignore_columns, "ignored column")
    _check_columns(df, spec.data.id_columns, "id column")
    _check_columns(df, [c for c in (spec.split.group_column, spec.split.time_column) if c], "split column")
    task = check_training_data(df, spec.data.target, spec.data.task)
    target = spec.data.target
    df, unlabelled = drop_unlabelled(df, target)
    if task == "regression" and not pd.api.types.is_numeric_dtype(df[target]):
        df[target] = pd.to_numeric(df[target])  # numbers stored as text; check_training_data vetted them
    warnings = [f"{unlabelled} rows without a '{target}' value were left out"] if unlabelled else []
    if spec.preprocessing.drop_duplicate_rows:
        before = len(df)
        df = df[~_hashable(df).duplicated()].reset_index(drop=True)
        if before - len(df):
            warnings.append(f"{before - len(df)} duplicate rows dropped")

    emit("stage", {"name": "profile"})
    excluded = {target, *spec.data.ignore_columns, *spec.data.id_columns}
    if spec.data.sequence_id:
        excluded.add(spec.data.sequence_id)
    candidates_cols = [c for c in df.columns if c not in excluded]
    kinds = infer_kinds(df[candidates_cols], overrides=spec.data.column_kinds)
    features = [c for c in candidates_cols if kinds[c] != "identifier"]
    if not features:
        raise DataError(f"no usable feature columns besides '{target}' (identifiers and ignored columns are left out)")
    kinds = {c: kinds[c] for c in features}
    profile = profile_table(df, target=target, task=task, kinds={**kinds, **{c: "identifier" for c in candidates_cols if c not in kinds}},
                            high_cardinality_threshold=spec.preprocessing.high_cardinality_threshold)
    warnings += list(profile.warnings)

    emit("stage", {"name": "split"})
    parts = split_frame(df, target, spec.split, task, spec.split_seed)
    classes = _class_labels(df[target]) if task == "classification" else None
    metric_name = spec.training.metric or default_metric(task, len(classes) if classes else None)
    check_metric_fits(metric_name, task, len(classes) if classes else None)
    problem = Problem(task=task, kinds=kinds, preprocessing=spec.preprocessing, metric=get_metric(metric_name),
                      classes=classes, seed=spec.seed)
    return Prepared(df=df, task=task, target=target, features=features, kinds=kinds, profile=profile, parts=parts,
                    classes=classes, metric_name=metric_name, problem=problem, warnings=warnings)


def _validation_folds(spec: Spec, prep: Prepared, families: list[Any] = ()) -> tuple[pd.DataFrame, list[tuple[np.ndarray, np.ndarray]] | None]:
    """train + validation, and the CV folds over it when model selection cross-validates."""
    from forgeml.data.split import cv_folds

    parts = prep.parts
    trainval = pd.concat([parts.train, parts.validation], ignore_index=True)
    mode = spec.training.validation
    # Images, sequences and networks that read a column whole are scored on the validation split: a network
    # per fold costs too much of the budget.
    whole = any(kind in ("image", "sequence") for kind in prep.kinds.values()) or any(
        entry[0].inputs != "table" for entry in families)
    use_cv = mode == "cv" or len(parts.validation) == 0 or (
        mode == "auto" and len(trainval) <= spec.training.cv_max_rows and not whole and spec.training.preset != "fast")
    folds = cv_folds(trainval, prep.target, spec.split, prep.task, spec.split_seed) if use_cv else None
    return trainval, folds


def _threshold(selection, problem, parts, features, target, trainval, warnings) -> float | None:
    """Binary problems scored by a label metric (accuracy, f1, ...): the probability cut that serves the
    metric best on the final model's out-of-fold or validation probabilities, when it beats 0.5 there.
    Sets problem.threshold, so the evaluation and the saved model use it."""
    from forgeml.tuning.automl import predictions
    from forgeml.tuning.threshold import tune_threshold

    if problem.task != "classification" or len(problem.classes or []) != 2 or problem.metric.needs_proba:
        return None
    if selection.oof and selection.oof.get("proba") is not None:
        scored = trainval if selection.mode == "cv" else parts.validation
        proba, y = selection.oof["proba"], scored[target]
    elif len(parts.validation) and selection.holdout_pipeline is not None:
        _, proba = predictions(selection.holdout_pipeline, parts.validation[features], problem)
        y = parts.validation[target]
    else:
        return None
    cut, score, base = tune_threshold(proba[:, 1], np.asarray(y), problem.metric, list(problem.classes))
    if cut == 0.5:
        return None
    problem.threshold = cut
    warnings.append(f"decision threshold {cut:.3f} for '{problem.classes[1]}' (instead of 0.5): "
                    f"{problem.metric.name} {score:.4f} vs {base:.4f} on held-out predictions")
    return cut


def _hashable(df: pd.DataFrame) -> pd.DataFrame:
    """df with list / array cells (sequence columns) as text, so rows can be compared and hashed."""
    lists = [c for c in df.columns if df[c].dtype == object and df[c].map(lambda v: isinstance(v, (list, np.ndarray))).any()]
    return df.astype({c: str for c in lists}) if lists else df


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))


def _evaluate_splits(selection, problem, parts, features, target, trainval) -> dict[str, dict[str, Any]]:
    from forgeml.evaluation.metrics import evaluate_predictions
    from forgeml.tuning.automl import predictions

    def run(pipeline: Any, frame: pd.DataFrame) -> dict[str, Any]:
        y_pred, proba = predictions(pipeline, frame[features], problem)
        return evaluate_predictions(problem.task, np.asarray(frame[target]), y_pred, proba, problem.classes)

    train = parts.train
    if len(train) > TRAIN_EVAL_ROWS:  # train scores only inform the fit diagnosis; a sample is plenty
        train = train.sample(n=TRAIN_EVAL_ROWS, random_state=problem.seed)
    out: dict[str, dict[str, Any]] = {"train": run(selection.pipeline, train)}
    if len(train) < len(parts.train):
        out["train"]["note"] = f"on a sample of {TRAIN_EVAL_ROWS:,} of {len(parts.train):,} training rows"
    if selection.oof and (selection.mode == "cv" or selection.ensemble):
        oof, scored = selection.oof, trainval if selection.mode == "cv" else parts.validation
        y_pred = oof["y_pred"]
        if problem.threshold is not None:
            from forgeml.tuning.threshold import label_at

            y_pred = label_at(oof["proba"][:, 1], problem.threshold, list(problem.classes))
        out["validation"] = evaluate_predictions(problem.task, np.asarray(scored[target]), y_pred,
                                                 oof["proba"], problem.classes)
        out["validation"]["note"] = ("out-of-fold predictions over train + validation" if selection.mode == "cv"
                                     else "the members' validation predictions, combined")
    elif len(parts.validation):
        out["validation"] = run(selection.holdout_pipeline or selection.pipeline, parts.validation)
    if len(parts.test):
        out["test"] = run(selection.pipeline, parts.test)
    return out


def _residuals(pipeline, problem, test: pd.DataFrame, features, target, seed: int, limit: int = 5000):
    """Test-split (y_true, y_pred) pairs for the residual plots, sampled to `limit` points."""
    if problem.task != "regression" or not len(test):
        return None
    sample = test.sample(n=min(limit, len(test)), random_state=seed)
    return {"y_true": sample[target].astype(float).tolist(),
            "y_pred": np.asarray(pipeline.predict(sample[features]), dtype=float).tolist()}


def _diagnose(evaluation, metric_name, task, parts, target, classes) -> dict[str, Any]:
    from forgeml.evaluation.diagnose import baseline_score, diagnose_fit

    def value(split: str) -> float | None:
        return evaluation.get(split, {}).get("metrics", {}).get(metric_name)

    held_out = parts.test if len(parts.test) else parts.validation
    baseline = None
    if len(held_out):
        try:
            baseline = baseline_score(task, metric_name, parts.train[target], held_out[target], classes)
        except Exception:  # a dummy score that cannot be computed only weakens the verdict
            log.debug("baseline score failed", exc_info=True)
    return diagnose_fit(metric_name, value("train"), value("validation"), value("test"), baseline=baseline).to_dict()


def _importance(model, parts, features, target, problem, deadline, keep: float) -> list[dict[str, Any]] | None:
    """Permutation importance sized to the time left (keeping `keep` seconds for registration).

    Its cost is about features x repeats x one prediction of the sample, so one timed prediction
    picks the repeats (up to 5) and, when even one repeat would not fit, a smaller sample.
    """
    from forgeml.evaluation.importance import feature_importance

    frame = parts.test if len(parts.test) else parts.validation if len(parts.validation) else parts.train
    budget = min(deadline.remaining() - keep, IMPORTANCE_MAX_SECONDS)
    rows = min(len(frame), 2000)
    sample = frame.sample(n=rows, random_state=problem.seed) if rows < len(frame) else frame
    start = time.monotonic()
    model.pipeline.predict(sample[features])
    per_pass = max(time.monotonic() - start, 1e-4) * (len(features) + 1)
    repeats = int(min(5, budget // per_pass))
    if repeats < 1:
        rows = int(rows * budget / per_pass)
        if rows < 100:
            log.info("feature importance skipped: %.1fs left, one pass needs %.1fs", budget, per_pass)
            return None
        repeats = 1
    try:
        return feature_importance(model, sample[features], sample[target], task=problem.task,
                                  metric_name=problem.metric.name, classes=problem.classes, seed=problem.seed,
                                  n_repeats=repeats, max_rows=rows)
    except Exception:  # importance is informative; never fail a run over it
        log.warning("feature importance could not be computed", exc_info=True)
        return None


def _leaderboard(selection, metric) -> pd.DataFrame:
    board = selection.leaderboard
    ok = board["status"] == "ok"
    ranked = board[ok].sort_values("score", ascending=not metric.greater_is_better)
    board = pd.concat([ranked, board[~ok]], ignore_index=True)
    board.insert(0, "rank", [i + 1 if s == "ok" else None for i, s in enumerate(board["status"])])
    return board.rename(columns={"score": metric.name})


def _register(result: TrainResult, fingerprint: dict[str, Any], example: pd.DataFrame, importance,
              tags: dict[str, Any] | None = None) -> None:
    from forgeml.registry.package import save_package
    from forgeml.registry.store import Store

    spec = result.spec
    store = Store()
    with store.start_run(spec.output.name, tags={"forgeml.family": result.model.family, **(tags or {})}) as run:
        result.run_id = run.run_id
        run.log_params({"task": result.model.task, "target": result.model.target, "family": result.model.family,
                        "metric": result.metric, "data.hash": fingerprint["hash"], "data.rows": fingerprint["rows"],
                        "data.source": fingerprint["source"], **{f"model.{k}": v for k, v in result.model.params.items()},
                        **_flat(spec.model_dump(mode="json"), "spec")})
        for split, ev in result.evaluation.items():
            run.log_metrics({f"{split}_{k}": v for k, v in ev.get("metrics", {}).items()})
        for row in _learning_curve(result.model).get("history", []):  # neural models: one step per epoch
            run.log_metrics({f"epoch_{k}": v for k, v in row.items() if k not in ("epoch", "seconds")},
                            step=int(row["epoch"]))
        run.log_dict(spec.model_dump(mode="json"), "spec.yaml")
        run.log_dict(fingerprint, "data_fingerprint.json")
        run.log_dict(result.leaderboard.replace({np.nan: None}).to_dict(orient="records"), "leaderboard.json")
        run.log_dict(result.profile.to_dict(), "profile.json")
        run.log_dict({"evaluation": result.evaluation, "diagnosis": result.diagnosis}, "evaluation.json")
        result.model.metadata.update({"run_id": run.run_id, "data": fingerprint})
        with tempfile.TemporaryDirectory(prefix="forgeml-") as tmp:
            package = Path(tmp) / "model"
            save_package(result.model, package, input_example=example)
            result.version = store.register(spec.output.name, package, run, description=spec.output.description,
                                            tags={"family": result.model.family, "metric": result.metric})
        result.model.metadata["version"] = result.version
        if spec.output.report:
            result.report_path = _write_report(result, fingerprint, importance, run.run_id)
            run.log_artifact(str(result.report_path), "report")


def _learning_curve(model: ForgeModel) -> dict[str, Any]:
    """Per-epoch history of a neural estimator ({} for the others)."""
    estimator = model.estimator
    history = getattr(estimator, "history_", None)
    if not history:
        return {}
    return {"history": list(history), "best_epoch": getattr(estimator, "best_epoch_", None)}


def _flat(obj: Any, prefix: str) -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}.{k}"))
        return out
    return {prefix: obj}


def _write_report(result: TrainResult, fingerprint, importance, run_id) -> Path:
    from forgeml.report.builder import ReportContext, write_report

    model = result.model
    ctx = ReportContext(
        title=f"{result.name} v{result.version}" if result.version else result.name,
        model_name=result.name, version=result.version, run_id=run_id, task=model.task, metric=result.metric,
        target=model.target, created=model.metadata.get("created", ""),
        leaderboard=result.leaderboard.replace({np.nan: None}).to_dict(orient="records"),
        evaluation=result.evaluation, diagnosis=result.diagnosis, importance=importance,
        profile=result.profile.to_dict(), residuals=result.residuals, spec=result.spec.model_dump(mode="json"),
        data=fingerprint, warnings=result.warnings, learning_curve=_learning_curve(model) or None,
    )
    from forgeml.registry.store import forgeml_home

    stem = f"v{result.version}" if result.version else datetime.now().strftime("unregistered-%Y%m%d-%H%M%S")
    path = forgeml_home() / "reports" / result.name / f"{stem}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_report(ctx, path)


# ----------------------------------------------------------------------------- use a model


def load(ref: str) -> ForgeModel:
    """The registered model `ref` (NAME, NAME@latest, NAME@ALIAS, NAME/3), hash-checked on load."""
    from forgeml.registry.store import Store

    return Store().load_model(ref)


def _model(model: ForgeModel | str) -> ForgeModel:
    return model if isinstance(model, ForgeModel) else load(model)


def predict(model: ForgeModel | str, data: DataLike, *, proba: bool = False) -> pd.DataFrame:
    """Predictions for every row of `data`: a `prediction` column, plus `proba_<class>` with proba=True."""
    from forgeml.data.io import read_table

    model = _model(model)
    frame = data if isinstance(data, pd.DataFrame) else read_table(data)
    return model.predict_frame(frame, proba=proba)


def evaluate(model: ForgeModel | str, data: DataLike) -> dict[str, Any]:
    """Metrics of `model` on labelled `data` (which must hold the model's target column)."""
    from forgeml.data.io import read_table
    from forgeml.evaluation.metrics import evaluate_predictions

    model = _model(model)
    frame = data if isinstance(data, pd.DataFrame) else read_table(data)
    if model.target not in frame.columns:
        raise DataError(f"evaluation data has no '{model.target}' column (the model's target)"
                        f"{did_you_mean(model.target, frame.columns)}")
    frame = frame[frame[model.target].notna()]
    if frame.empty:
        raise DataError(f"evaluation data has no rows with a '{model.target}' value")
    y_pred, proba = model.predict(frame), None
    if model.task == "classification":
        proba = model.predict_proba(frame).to_numpy()
    out = evaluate_predictions(model.task, np.asarray(frame[model.target]), y_pred, proba, model.classes)
    out["model"] = {"name": model.name, "version": model.version, "family": model.family}
    out["rows"] = int(len(frame))
    return out


def profile(data: DataLike, *, target: str | None = None, task: str = "auto") -> Any:
    """A data profile (kinds, missing rates, duplicates, balance, leakage warnings) of `data`."""
    from forgeml.data.io import read_table
    from forgeml.data.profile import profile_table

    frame = data if isinstance(data, pd.DataFrame) else read_table(data)
    if target is not None:
        _check_columns(frame, [target], "target column")
    return profile_table(frame, target=target, task=task)
