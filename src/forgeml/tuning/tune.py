"""`forgeml.tune`: search one family's hyperparameters, refit the best, evaluate and register it.

The data is loaded, profiled and split as `train` does it. Trials run in one or more worker processes
on a study in the study database (see search.py), each trial logged as a child MLflow run of the
study's run in the store. The best configuration is then scored once more, refitted on train +
validation and evaluated on test exactly like an AutoML winner, and registered like `train` does.
Workers on other machines join a study with the same command, FORGEML_TRACKING_URI and `join=True`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forgeml import __version__
from forgeml.errors import ForgeError, Interrupted, SpecError, TrainingError
from forgeml.pipeline import TrainResult
from forgeml.tuning.search import SearchSpace, TrialData

if TYPE_CHECKING:
    import optuna

    from forgeml.registry.store import Store
    from forgeml.tuning.automl import Problem

log = logging.getLogger(__name__)

EventFn = Callable[[str, dict[str, Any]], None]
_STATUS = {"COMPLETE": "ok", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


@dataclass(repr=False)
class TuneResult(TrainResult):
    """What `tune` returns: a TrainResult whose leaderboard holds the study's trials, best first."""

    study: str = ""
    storage: str = ""
    best_trial: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    trials_run: int = 0  # trials run by this call's processes (the study may hold more)

    def __repr__(self) -> str:
        score = self.metrics.get(self.metric)
        shown = f"{score:.4f}" if score is not None else "n/a"
        return (f"TuneResult({self.ref or self.name}: {self.model.family} from trial {self.best_trial} of study "
                f"'{self.study}', test {self.metric}={shown})")


@dataclass
class StudySummary:
    """What a pure worker (`join=True`) returns: the study as it stands; no model."""

    study: str
    storage: str
    metric: str
    trials_run: int
    leaderboard: pd.DataFrame
    best_trial: int | None
    best_value: float | None
    best_params: dict[str, Any]


@dataclass
class StudyJob:
    """Everything a worker process needs to run trials of one study. It crosses process boundaries by
    pickle between forgeml's own processes, so the family and the metric travel by name."""

    study: str
    storage: str
    family: str
    base: dict[str, Any]
    space: SearchSpace
    problem: Problem  # metric set to None; rebuilt from `metric`
    metric: str
    data: TrialData
    sampler: str
    pruner: str
    trials: int
    seed: int
    grid_points: int
    report_every: int
    end: float | None  # wall-clock time (time.time()) at which the search stops; None: no limit
    run_id: str | None  # the study's MLflow run; None: trials are not tracked


# ----------------------------------------------------------------------------- workers


def run_worker(job: StudyJob, index: int = 0, on_event: EventFn | None = None) -> int:
    """Run trials of `job`'s study in this process until it is done; returns the trials run here.
    Worker `index` seeds its sampler with seed + index, so workers explore different points."""
    from forgeml.evaluation.metrics import get_metric
    from forgeml.models.zoo import get_family
    from forgeml.tuning.automl import Deadline
    from forgeml.tuning.search import (
        Objective,
        make_pruner,
        make_sampler,
        open_storage,
        open_study,
        run_trials,
    )

    problem = replace(job.problem, metric=get_metric(job.metric))
    direction = "maximize" if problem.metric.greater_is_better else "minimize"
    sampler = make_sampler(job.sampler, job.space, seed=job.seed + index, trials=job.trials, grid_points=job.grid_points)
    study = open_study(job.study, direction=direction, sampler=sampler, pruner=make_pruner(job.pruner),
                       storage=open_storage(job.storage))
    deadline = Deadline(None if job.end is None else job.end - time.time())
    objective = Objective(get_family(job.family), job.base, job.space, problem, job.data, deadline=deadline,
                          report_every=job.report_every, on_event=on_event)
    callbacks: list[Callable[..., None]] = []
    if job.run_id is not None:
        from forgeml.registry.store import Store

        callbacks.append(_TrialLogger(Store(), job.run_id, job.family, job.metric))
    if on_event is not None:
        callbacks.append(_progress(on_event, job.trials, problem.metric))
    return run_trials(study, objective, trials=job.trials, deadline=deadline, callbacks=callbacks)


def _worker_main(job: StudyJob, index: int) -> None:
    """Entry point of a spawned worker process: a user error is one line on stderr and exit code 2."""
    try:
        run_worker(job, index)
    except ForgeError as exc:
        sys.stderr.write(f"forgeml tune worker {index}: {exc}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def _run_workers(job: StudyJob, workers: int, on_event: EventFn | None) -> int:
    """Worker 0 in this process, workers 1..N-1 as spawned processes on the same study."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork: MLflow, SQLAlchemy and OpenMP hold threads
    procs = [context.Process(target=_worker_main, args=(job, i), name=f"forgeml-tune-{i}") for i in range(1, workers)]
    for proc in procs:
        proc.start()
    try:
        ran = run_worker(job, 0, on_event)
    except BaseException:
        for proc in procs:
            proc.terminate()
        raise
    finally:
        for proc in procs:
            proc.join()
    for i, proc in enumerate(procs, start=1):
        if proc.exitcode:
            log.warning("tuning worker %d ended with exit code %s", i, proc.exitcode)
    return ran


def _progress(on_event: EventFn, trials: int, metric: Any) -> Callable[..., None]:
    from forgeml.tuning.search import finished

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            best = f", best {metric.name} {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:  # no complete trial yet
            best = ""
        on_event("stage", {"name": f"trial {min(finished(study), trials)}/{trials}{best}"})
        on_event("trial", {"number": trial.number, "state": trial.state.name, "value": trial.value})

    return callback


class _TrialLogger:
    """An Optuna callback writing each finished trial as a child MLflow run of the study's run: params,
    score, fit time, intermediate scores by step; FAILED when the trial failed. A tracking error is
    logged and does not stop the search."""

    def __init__(self, store: Store, parent: str, family: str, metric: str) -> None:
        self.store, self.parent, self.family, self.metric = store, parent, family, metric

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from mlflow.entities import Metric

        from forgeml.tuning.search import trial_params

        state = _STATUS.get(trial.state.name, trial.state.name.lower())
        attrs = trial.user_attrs
        try:
            run = self.store.start_run(f"{study.study_name}-trial-{trial.number}", tags={
                "mlflow.parentRunId": self.parent, "forgeml.study": study.study_name, "forgeml.trial": trial.number,
                "forgeml.trial_state": "complete" if state == "ok" else state, "forgeml.family": self.family,
                **({"forgeml.error": attrs["error"]} if "error" in attrs else {})})
            run.log_params(trial_params(trial))
            done = trial.state.name == "COMPLETE"  # a pruned trial's value is its last report, not a score
            run.log_metrics({**({self.metric: trial.value} if done else {}),
                             **{k: attrs[k] for k in ("std", "fit_time", "iterations") if attrs.get(k) is not None}})
            now = int(time.time() * 1000)
            steps = [Metric("intermediate", float(v), now, int(s)) for s, v in sorted(trial.intermediate_values.items())]
            for start in range(0, len(steps), 1000):
                self.store.client.log_batch(run.run_id, metrics=steps[start:start + 1000], synchronous=True)
            self.store.client.set_terminated(run.run_id, "FAILED" if state == "failed" else "FINISHED")
        except Exception:
            log.warning("could not log trial %d to the tracking store", trial.number, exc_info=True)


# ----------------------------------------------------------------------------- the study and its run


def _setup(spec: Any, family: str, task: str, metric: str, fingerprint: Mapping[str, Any], mode: str,
           base: Mapping[str, Any]) -> dict[str, str]:
    """What makes trial scores comparable: a study only takes trials run on the same setup."""
    from forgeml.registry.package import jsonable

    config = {"split": spec.split.model_dump(mode="json"), "split_seed": spec.split_seed, "validation": mode,
              "preprocessing": spec.preprocessing.model_dump(mode="json"), "seed": spec.seed, "params": jsonable(base)}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"family": family, "task": task, "metric": metric, "data": str(fingerprint["hash"])[:16], "config": digest}


def _check_setup(study: optuna.Study, setup: Mapping[str, str]) -> None:
    stored = study.user_attrs.get("setup")
    if stored is None:
        study.set_user_attr("setup", dict(setup))
        return
    differ = [k for k in setup if stored.get(k) != setup[k]]
    if differ:
        what = {"data": "other data", "config": "another split, preprocessing, seed or fixed parameters"}
        reasons = "; ".join(what.get(k, f"{k} {stored.get(k)!r} (now {setup[k]!r})") for k in differ)
        raise SpecError(f"study '{study.study_name}' holds trials of another setup ({reasons}); start a fresh "
                        f"study with --study NAME (tuning.study) or another --name")


def _study_run(store: Store, study: optuna.Study, params: Mapping[str, Any]) -> str:
    """The study's MLflow run (its trials are child runs of it), created by the first process to need it."""
    run_id = study.user_attrs.get("mlflow_run_id")
    if run_id:
        try:
            run = store.client.get_run(run_id)
            if run.info.lifecycle_stage == "active":
                if run.info.status != "RUNNING":
                    store.client.update_run(run_id, status="RUNNING")
                return run_id
        except Exception:  # noqa: BLE001 - deleted, or another store: make a new one
            log.info("study run %s not found in %s; starting a new one", run_id, store.describe())
    run = store.start_run(f"study {study.study_name}", tags={"forgeml.study": study.study_name,
                                                             "forgeml.family": params.get("family", "")})
    run.log_params(params)
    study.set_user_attr("mlflow_run_id", run.run_id)
    return run.run_id


def _end_run(store: Store, run_id: str, status: str) -> None:
    try:
        store.client.set_terminated(run_id, status)
    except Exception:
        log.warning("could not end study run %s", run_id, exc_info=True)


def _finish_study_run(store: Store, run_id: str, study: optuna.Study, metric: str) -> None:
    from forgeml.tuning.search import finished

    try:
        store.client.set_tag(run_id, "forgeml.best_trial", str(study.best_trial.number))
        store.client.log_metric(run_id, f"best_{metric}", float(study.best_value), step=finished(study))
        store.client.set_terminated(run_id, "FINISHED")
    except Exception:
        log.warning("could not update study run %s", run_id, exc_info=True)


def trials_leaderboard(study: optuna.Study, family: str, metric: Any) -> pd.DataFrame:
    """One row per trial, best complete trial first: rank, trial, family, score, std, fit_time, status,
    note (its parameters, its error or its twin), then one column per parameter."""
    from forgeml.tuning.search import trial_params

    rows = []
    for t in study.get_trials(deepcopy=False):
        params = trial_params(t)
        attrs = t.user_attrs
        shown = ", ".join(f"{k}={_short(v)}" for k, v in params.items())
        note = (attrs.get("error") or (f"same as trial {attrs['duplicate_of']}" if "duplicate_of" in attrs else "")
                or (f"{attrs['stopped']}: {shown}" if "stopped" in attrs else shown))
        value = t.value if t.state.name == "COMPLETE" else None  # a pruned trial's value is its last report
        rows.append({"trial": t.number, "family": family, metric.name: value, "std": attrs.get("std"),
                     "fit_time": attrs.get("fit_time"), "status": _STATUS.get(t.state.name, t.state.name.lower()),
                     "note": note, **{(k if k not in _COLUMNS else f"param_{k}"): v for k, v in params.items()}})
    board = pd.DataFrame(rows, columns=[c for c in _COLUMNS if c != "rank"] if not rows else None)
    if board.empty:
        board.insert(0, "rank", [])
        return board
    ok = board["status"] == "ok"
    ranked = board[ok].sort_values([metric.name, "trial"], ascending=[not metric.greater_is_better, True])
    board = pd.concat([ranked, board[~ok].sort_values("trial")], ignore_index=True)
    board.insert(0, "rank", [i + 1 if s == "ok" else None for i, s in enumerate(board["status"])])
    return board


_COLUMNS = ("rank", "trial", "family", "std", "fit_time", "status", "note")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------- tune


def tune(
    data: Any = None,
    *,
    spec: Any = None,
    register: bool = True,
    join: bool = False,
    on_event: EventFn | None = None,
    **options: Any,
) -> TuneResult | StudySummary:
    """Search one family's hyperparameters with Optuna, refit the best, evaluate and register it.

    data: a DataFrame or a path / URL, as for `train`. options: keys of `forgeml.spec.OVERRIDES` plus
    seed and models (one family, e.g. models="lightgbm"), sampler, pruner, trials, study, and
    workers (processes running trials here; for `train`, workers means DDP processes instead).
    join: run trials of the study as a pure worker (another process refits and registers); returns a
    StudySummary. register=False: no tracking runs and no registration.
    """
    from forgeml.data.io import data_fingerprint
    from forgeml.pipeline import (
        _candidates,
        _diagnose,
        _evaluate_splits,
        _importance,
        _prepare,
        _read,
        _register,
        _residuals,
        _seed_everything,
        _validation_folds,
        _write_report,
    )
    from forgeml.registry.store import Store
    from forgeml.spec import build_spec
    from forgeml.tuning.automl import Deadline, select_model
    from forgeml.tuning.search import (
        default_point,
        family_space,
        finished,
        mask_url,
        open_storage,
        open_study,
        study_storage_url,
        trial_params,
    )

    started = time.monotonic()
    emit = on_event or (lambda _e, _p: None)
    if "workers" in options:
        options["tuning_workers"] = options.pop("workers")
    if isinstance(data, (str, os.PathLike)) and not isinstance(data, pd.DataFrame):
        options.setdefault("source", str(data))
        data = None
    spec = build_spec(spec if not isinstance(spec, os.PathLike) else str(spec), **options)
    tuning = spec.tuning
    if spec.models == "auto" or len(spec.models) != 1:
        got = "auto" if spec.models == "auto" else ",".join(m.family for m in spec.models)
        raise SpecError(f"tune searches one model family; choose it with --model (e.g. --model lightgbm) or "
                        f"models: [lightgbm] in the spec (got models={got})")
    limit = tuning.time_limit if tuning.time_limit is not None else spec.training.time_limit
    deadline = Deadline(limit, start=started)
    _seed_everything(spec.seed)

    emit("stage", {"name": "load data"})
    df, source = _read(data, spec)
    fingerprint = {**data_fingerprint(df), "source": source}
    prep = _prepare(df, spec, emit)
    family, base = _candidates(spec, prep.task, prep.kinds)[0]
    trainval, folds = _validation_folds(spec, prep)
    space = family_space(family, prep.task, base, tuning.spaces.get(family.name))
    features, target, problem = prep.features, prep.target, prep.problem
    if folds:
        trial_data = TrialData(trainval[features], trainval[target], folds=folds)
    else:
        trial_data = TrialData(prep.parts.train[features], prep.parts.train[target],
                               X_val=prep.parts.validation[features], y_val=prep.parts.validation[target])

    url = study_storage_url()
    study_name = tuning.study or f"{spec.output.name}-{family.name}"
    direction = "maximize" if problem.metric.greater_is_better else "minimize"
    study = open_study(study_name, direction=direction, storage=open_storage(url))
    _check_setup(study, _setup(spec, family.name, prep.task, prep.metric_name, fingerprint,
                               "cv" if folds else "holdout", base))
    if not study.get_trials(deepcopy=False) and tuning.sampler != "grid":
        study.enqueue_trial(default_point(family, prep.task, base, space), skip_if_exists=True)
    store = Store() if register or join else None
    run_id = None
    if store is not None:
        run_id = _study_run(store, study, {"family": family.name, "metric": prep.metric_name, "task": prep.task,
                                           "sampler": tuning.sampler, "pruner": tuning.pruner,
                                           "trials": tuning.trials, "storage": mask_url(url), "data.hash": fingerprint["hash"]})
    job = StudyJob(study=study_name, storage=url, family=family.name, base=dict(base), space=space,
                   problem=replace(problem, metric=None), metric=prep.metric_name, data=trial_data,
                   sampler=tuning.sampler, pruner=tuning.pruner, trials=tuning.trials, seed=spec.seed,
                   grid_points=tuning.grid_points, report_every=tuning.report_every,
                   end=None if limit is None else time.time() + deadline.remaining(), run_id=run_id)

    emit("stage", {"name": f"search {family.name}: {finished(study)}/{tuning.trials} trials"})
    try:
        ran = _run_workers(job, tuning.workers, on_event)
    except KeyboardInterrupt:
        raise Interrupted("tuning interrupted; the study keeps its trials: run the same command to go on") from None
    board = trials_leaderboard(study, family.name, problem.metric)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    best = study.best_trial if complete else None
    if join:
        return StudySummary(study=study_name, storage=mask_url(url), metric=prep.metric_name, trials_run=ran,
                            leaderboard=board, best_trial=best.number if best else None,
                            best_value=best.value if best else None, best_params=trial_params(best) if best else {})
    if best is None:
        if store is not None and run_id is not None:
            _end_run(store, run_id, "FAILED")
        errors = sorted({t.user_attrs["error"] for t in study.get_trials(deepcopy=False) if "error" in t.user_attrs})
        raise TrainingError(f"no trial of study '{study_name}' finished"
                            + (f" ({'; '.join(errors[:2])})" if errors else " within the time limit")
                            + "; raise --time-limit or --trials, or fix the search space")

    emit("stage", {"name": f"refit trial {best.number}"})
    params = {**base, **trial_params(best)}
    parts = prep.parts
    selection = select_model([(family, params)], problem, (parts.train[features], parts.train[target]),
                             (parts.validation[features], parts.validation[target]), folds=folds,
                             deadline=Deadline(None), reserve=0.0, refit=spec.training.refit)
    emit("stage", {"name": "evaluate"})
    evaluation = _evaluate_splits(selection, problem, parts, features, target, trainval)
    diagnosis = _diagnose(evaluation, prep.metric_name, prep.task, parts, target, prep.classes)
    model = _model(selection, prep, spec, params, evaluation, study_name, best.number)
    importance = _importance(model, parts, features, target, problem, Deadline(None), keep=0.0)
    trial_seconds = float(np.nansum([t.user_attrs.get("fit_time") or 0.0 for t in study.get_trials(deepcopy=False)]))
    result = TuneResult(model=model, spec=spec, leaderboard=board, evaluation=evaluation, diagnosis=diagnosis,
                        profile=prep.profile, metric=prep.metric_name, name=spec.output.name, warnings=prep.warnings,
                        fit_seconds=trial_seconds + selection.fit_seconds,
                        residuals=_residuals(selection.pipeline, problem, parts.test, features, target, spec.seed),
                        study=study_name, storage=mask_url(url), best_trial=best.number,
                        best_params=trial_params(best), trials_run=ran)
    if register and store is not None:
        emit("stage", {"name": "register"})
        _register(result, fingerprint, parts.train[features].head(5), importance,
                  tags={"forgeml.study": study_name, "forgeml.study_run_id": run_id, "forgeml.trial": best.number})
        _finish_study_run(store, run_id, study, prep.metric_name)
    elif spec.output.report:
        result.report_path = _write_report(result, fingerprint, importance, None)
    result.elapsed = time.monotonic() - started
    emit("done", {"elapsed": result.elapsed})
    return result


def _model(selection: Any, prep: Any, spec: Any, params: dict[str, Any], evaluation: dict[str, Any],
           study: str, trial: int) -> Any:
    from forgeml.data.schema import FeatureSchema
    from forgeml.model import ForgeModel

    return ForgeModel(
        pipeline=selection.pipeline, task=prep.task, target=prep.target,
        schema=FeatureSchema.from_frame(prep.parts.train[prep.features], prep.kinds),
        family=selection.winner.family, params=params, classes=prep.classes,
        metadata={"name": spec.output.name, "metric": prep.metric_name, "forgeml_version": __version__,
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "test_metrics": evaluation.get("test", {}).get("metrics", {}), "study": study, "trial": trial},
    )
