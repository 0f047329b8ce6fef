"""Hyperparameter search with Optuna: search spaces, samplers, pruners, the study database and the objective.

A search space is a family's space from the zoo (`models/zoo.py`), overridden by the spec's
`tuning.spaces`: ranges `{low, high, log}`, choices `[a, b]`, fixed values, and parameters searched
only `when` others take given values. Studies live in a database beside the model store (SQLite
`FORGEML_HOME/studies.db`, or a schema of its own on the store's PostgreSQL server), so processes on
one or many machines run trials of one study. A trial reports its validation score as it goes (every
few LightGBM trees, every epoch of a neural family, otherwise every CV fold) and the pruner stops the
hopeless ones. Optuna is imported inside the functions that use it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forgeml.errors import Interrupted, SpecError, TrainingError, did_you_mean
from forgeml.models.zoo import Choice, Family, Float, Int

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from forgeml.tuning.automl import Deadline, Problem

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
STUDY_SCHEMA = "forgeml_studies"  # PostgreSQL: MLflow and Optuna each keep an alembic_version table
HEARTBEAT_SECONDS, STALE_SECONDS = 10, 60  # a trial whose process stopped beating for a minute is failed


# ----------------------------------------------------------------------------- search spaces


@dataclass(frozen=True)
class Fixed:
    value: Any


@dataclass(frozen=True)
class Dim:
    """One dimension of a search space, searched only while every `when` (param, allowed values) holds."""

    dist: Float | Int | Choice | Fixed
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()


SearchSpace = dict[str, Dim]
_FORMS = "{low, high, log}, {choices: [...]}, a list of choices or a fixed value (each may add `when`)"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_dim(name: str, raw: Any, like: Any = None) -> Dim:
    """One dimension from its spec form; `like` (the zoo's dimension) decides int or float ranges."""
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    if isinstance(raw, Mapping):
        keys = set(raw)
        form = ({"low", "high", "log"} if keys & {"low", "high"} else {"choices"} if "choices" in keys
                else {"value"} if "value" in keys else set())
        if not form:
            raise SpecError(f"'{name}': expected {_FORMS}; got {dict(raw)!r}")
        for key in sorted(keys - form - {"when"}):
            raise SpecError(f"'{name}': unknown key '{key}'{did_you_mean(key, [*form, 'when'])} (expected {_FORMS})")
        if "when" in raw:
            when = _parse_when(name, raw["when"])
        if "choices" in form:
            return Dim(_choice(name, raw["choices"]), when)
        if "value" in form:
            return Dim(Fixed(raw["value"]), when)
        return Dim(_range(name, raw, like), when)
    if isinstance(raw, (list, tuple)):
        return Dim(_choice(name, raw))
    return Dim(Fixed(raw))


def _choice(name: str, options: Any) -> Choice:
    if not isinstance(options, (list, tuple)) or not options:
        raise SpecError(f"'{name}': choices must be a non-empty list; got {options!r}")
    return Choice(tuple(tuple(o) if isinstance(o, list) else o for o in options))


def _range(name: str, raw: Mapping[str, Any], like: Any) -> Float | Int:
    low, high, log_scale = raw.get("low"), raw.get("high"), raw.get("log", False)
    if not (_number(low) and _number(high)):
        raise SpecError(f"'{name}': a range needs numbers low and high; got low={low!r}, high={high!r}")
    if not isinstance(log_scale, bool):
        raise SpecError(f"'{name}': log must be true or false; got log={log_scale!r}")
    if low > high:
        raise SpecError(f"'{name}': low ({low}) is greater than high ({high}); swap them")
    if log_scale and low <= 0:
        raise SpecError(f"'{name}': a log range needs low > 0; got low={low}")
    integral = float(low).is_integer() and float(high).is_integer()
    if integral and (isinstance(like, Int) or (like is None and isinstance(low, int) and isinstance(high, int))):
        return Int(int(low), int(high), log_scale)
    return Float(float(low), float(high), log_scale)


def _parse_when(name: str, raw: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(f"'{name}': when must map parameters to values, e.g. when: {{kernel: rbf}}; got {raw!r}")
    return tuple((str(k), tuple(v) if isinstance(v, (list, tuple)) else (v,)) for k, v in raw.items())


def parse_space(raw: Mapping[str, Any], zoo: Mapping[str, Any] | None = None) -> SearchSpace:
    """A SearchSpace from the spec's mapping of parameter -> dimension; SpecError names the bad entry."""
    if not isinstance(raw, Mapping):
        raise SpecError(f"a search space maps parameter names to dimensions; got {raw!r}")
    return {str(name): parse_dim(str(name), value, (zoo or {}).get(name)) for name, value in raw.items()}


def _check_conditions(space: SearchSpace) -> None:
    for name, dim in space.items():
        for parent, _values in dim.when:
            if parent not in space:
                raise SpecError(f"'{name}': when refers to '{parent}', which is not in the search space"
                                f"{did_you_mean(parent, space)}")
            if parent == name:
                raise SpecError(f"'{name}': a parameter cannot depend on itself")


def _settle_conditions(space: SearchSpace, known: Mapping[str, Any], user: set[str]) -> SearchSpace:
    """Conditions on parameters outside the space are decided now from `known` (pinned values and
    defaults): met, the condition goes; not met, the dimension goes. A zoo dimension whose parent left
    the space goes too; a user's stays, for _check_conditions to report."""
    out: SearchSpace = {}
    for name, dim in space.items():
        keep, when = True, []
        for parent, values in dim.when:
            if parent in space or (parent not in known and name in user):
                when.append((parent, values))
            elif parent in known:
                keep = keep and _plain(known[parent]) in [_plain(v) for v in values]
            else:
                keep = False
        if keep:
            out[name] = Dim(dim.dist, tuple(when))
    return out if len(out) == len(space) else _settle_conditions(out, known, user)


def _probes(dim: Dim) -> list[Any]:
    """Values that stand for a dimension when checking that the family accepts them."""
    dist = dim.dist
    if isinstance(dist, Fixed):
        return [dist.value]
    if isinstance(dist, Choice):
        return list(dist.options)
    return [dist.low, dist.high]


def family_space(family: Family, task: str, fixed: Mapping[str, Any], override: Mapping[str, Any] | None) -> SearchSpace:
    """The space searched for `family` on `task`.

    The zoo's space minus the parameters the user pinned in `fixed` (models[].params), plus the
    spec's `override`. Every value is checked by building the estimator, so an unknown name or a value
    the family refuses fails now; zoo dimensions that do not apply to `task` (linear's `alpha` for a
    classifier) are left out.
    """
    where = f"tuning.spaces.{family.name}"
    user = {}
    try:
        user = parse_space(override or {}, family.space)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None
    conditions = family.conditions
    space: SearchSpace = {
        name: Dim(dist, tuple((p, tuple(v)) for p, v in conditions.get(name, {}).items()))
        for name, dist in family.space.items() if name not in fixed
    }
    space.update(user)
    space = _settle_conditions(space, {**family.defaults.get(task, {}), **fixed}, set(user))
    for name in list(space):
        for value in _probes(space[name]):
            try:
                family.make(task, {**fixed, name: value})
            except SpecError as exc:
                if name in user:
                    raise SpecError(f"{where}.{name}: {exc}") from None
                log.debug("zoo dimension %s of %s left out for %s: %s", name, family.name, task, exc)
                space.pop(name)
                break
    space = _settle_conditions(space, {**family.defaults.get(task, {}), **fixed}, set(user))
    try:
        _check_conditions(space)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None
    if not any(not isinstance(d.dist, Fixed) for d in space.values()):
        raise SpecError(f"model family '{family.name}' has no search space for {task}; give one in {where}, "
                        "e.g. {param: {low: 0.01, high: 1, log: true}}")
    return space


def default_point(family: Family, task: str, fixed: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
    """The family's defaults as a point of `space` (ranges clipped, choices kept only when listed), for
    the first trial of a study, so that a search never ends below the default configuration."""
    try:
        known = dict(family.make(task, dict(fixed)).get_params())
    except Exception:  # noqa: BLE001 - a family without get_params still has its zoo defaults
        known = {}
    known.update(family.defaults.get(task, {}))
    known.update(fixed)
    point: dict[str, Any] = {}
    for name, dim in space.items():
        value, dist = known.get(name), dim.dist
        if value is None or isinstance(value, bool) and not isinstance(dist, Choice):
            continue
        if isinstance(dist, (Float, Int)) and _number(value):
            value = min(max(value, dist.low), dist.high)
            point[name] = round(value) if isinstance(dist, Int) else float(value)
        elif isinstance(dist, Choice):
            options = [tuple(o) if isinstance(o, list) else o for o in dist.options]
            wanted = tuple(value) if isinstance(value, list) else value
            if wanted in options:
                point[name] = _label(dist.options[options.index(wanted)])
    return {n: v for n, v in point.items() if _active(space[n], {**point, **_fixed_values(space)})}


def _fixed_values(space: SearchSpace) -> dict[str, Any]:
    return {n: d.dist.value for n, d in space.items() if isinstance(d.dist, Fixed)}


def _active(dim: Dim, chosen: Mapping[str, Any]) -> bool:
    return all(parent in chosen and _plain(chosen[parent]) in [_plain(v) for v in values] for parent, values in dim.when)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _label(option: Any) -> Any:
    """Optuna's categorical values are None, bool, int, float or str: other options go by a JSON label."""
    return option if option is None or isinstance(option, (bool, int, float, str)) else json.dumps(_plain(option))


def _order(space: SearchSpace) -> list[str]:
    """Parameter names with every `when` parent before the parameters that depend on it."""
    done: list[str] = []

    def visit(name: str, seen: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in seen:
            raise SpecError(f"search space conditions form a cycle: {' -> '.join([*seen, name])}")
        for parent, _ in space[name].when:
            visit(parent, (*seen, name))
        done.append(name)

    for name in space:
        visit(name, ())
    return done


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """A trial's parameters: active dimensions sampled (or fixed) in dependency order."""
    params: dict[str, Any] = {}
    for name in _order(space):
        dim = space[name]
        if not _active(dim, params):
            continue
        dist = dim.dist
        if isinstance(dist, Fixed):
            params[name] = dist.value
        elif isinstance(dist, Int):
            params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, Float):
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        else:
            labels = [_label(o) for o in dist.options]
            params[name] = dist.options[labels.index(trial.suggest_categorical(name, labels))]
    return params


def grid_values(space: SearchSpace, points: int) -> dict[str, list[Any]]:
    """Every searched dimension as a list of values: ranges become `points` values (log-spaced for log
    ranges; integer ranges keep every integer when there are few), choices stay as they are."""
    grid: dict[str, list[Any]] = {}
    for name, dim in space.items():
        dist = dim.dist
        if isinstance(dist, Choice):
            grid[name] = [_label(o) for o in dist.options]
        elif isinstance(dist, Int):
            if dist.high - dist.low + 1 <= points:
                grid[name] = list(range(dist.low, dist.high + 1))
            else:
                spaced = np.geomspace(dist.low, dist.high, points) if dist.log else np.linspace(dist.low, dist.high, points)
                grid[name] = sorted({round(v) for v in spaced})
        elif isinstance(dist, Float):
            spaced = np.geomspace(dist.low, dist.high, points) if dist.log else np.linspace(dist.low, dist.high, points)
            grid[name] = [float(v) for v in spaced]
    return grid


# ----------------------------------------------------------------------------- samplers and pruners


def make_sampler(name: str, space: SearchSpace, *, seed: int, trials: int | None = None,
                 grid_points: int = 5) -> optuna.samplers.BaseSampler:
    """tpe (multivariate Bayesian optimisation), random or grid, seeded."""
    import optuna

    if name == "tpe":
        # Random start-up trials: a quarter of the budget, between 3 and Optuna's 10.
        startup = 10 if trials is None else min(10, max(3, trials // 4))
        conditional = any(d.when for d in space.values())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=conditional,
                                              n_startup_trials=startup, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid_values(space, grid_points), seed=seed)
    raise SpecError(f"unknown sampler '{name}'{did_you_mean(name, SAMPLERS)} (known: {', '.join(SAMPLERS)})")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """median (stop a trial below the median of earlier ones at the same step), hyperband (successive
    halving over several brackets) or none."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SpecError(f"unknown pruner '{name}'{did_you_mean(name, PRUNERS)} (known: {', '.join(PRUNERS)})")


# ----------------------------------------------------------------------------- the study database


def study_storage_url() -> str:
    """Where studies live: FORGEML_STUDY_URI; else beside the store: a schema of the store's PostgreSQL
    database, the folder of its SQLite file, or FORGEML_HOME/studies.db."""
    explicit = os.environ.get("FORGEML_STUDY_URI", "").strip()
    if explicit:
        return explicit
    from forgeml.registry.store import forgeml_home

    tracking = os.environ.get("FORGEML_TRACKING_URI", "").strip()
    if tracking.startswith(("postgresql://", "postgresql+", "postgres://")):
        from sqlalchemy.engine import make_url

        url = make_url(tracking.replace("postgres://", "postgresql://", 1))
        url = url.update_query_dict({"options": f"-csearch_path={STUDY_SCHEMA}"})
        return url.render_as_string(hide_password=False)
    if tracking.startswith("sqlite:///"):
        return f"sqlite:///{(Path(tracking.removeprefix('sqlite:///')).parent / 'studies.db').as_posix()}"
    if tracking:
        log.warning("studies are kept in FORGEML_HOME/studies.db; to share them between machines set "
                    "FORGEML_STUDY_URI to a database every machine reaches")
    home = forgeml_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(home / 'studies.db').as_posix()}"


def open_storage(url: str | None = None) -> optuna.storages.BaseStorage:
    """The study database at `url` (default: study_storage_url()), created on first use, with trial
    heartbeats so the trials of a process that died are marked failed."""
    import optuna
    import sqlalchemy

    url = url or study_storage_url()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        kwargs = {"creator": _sqlite(url.removeprefix("sqlite:///"))}
    elif url.startswith("postgres") and STUDY_SCHEMA in url:  # our own schema on the store's server
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text(f"CREATE SCHEMA IF NOT EXISTS {STUDY_SCHEMA}"))
        except sqlalchemy.exc.IntegrityError:  # created at the same moment by another worker
            pass
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise TrainingError(f"cannot open the study database {mask_url(url)}: {str(exc).splitlines()[0]}") from None
        finally:
            engine.dispose()
    _quiet_optuna()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                              grace_period=STALE_SECONDS)
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise TrainingError(f"cannot open the study database {mask_url(url)}: {str(exc).splitlines()[0]}") from None


def _sqlite(path: str) -> Callable[[], Any]:
    """Connections to a study file shared by local processes: they wait up to a minute for its lock, and
    write-ahead logging without an fsync per commit keeps a trial's dozen small writes cheap (a crash of
    the process loses nothing; a power cut may lose the last trials)."""
    import sqlite3

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    return connect


def _quiet_optuna() -> None:
    """Optuna logs every trial on stderr, failures with their traceback; forgeml records and reports
    trials itself (a failed trial's error is in its `error` attribute and its tracking run)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)


def mask_url(url: str) -> str:
    """`url` with its password shown as ***."""
    import re

    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def open_study(name: str, *, direction: str, sampler: Any = None, pruner: Any = None,
               storage: Any = None) -> optuna.Study:
    """Create the study `name`, or join it when it exists (how more workers share one study).
    storage: an Optuna storage or URL; None keeps the study in memory."""
    import optuna

    _quiet_optuna()
    study = optuna.create_study(study_name=name, storage=storage, direction=direction, sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    held = study.direction.name.lower()
    if held != direction:
        raise SpecError(f"study '{name}' exists with another objective: it was made to {held} its score, this "
                        f"run would {direction} it; choose another study name")
    return study


def finished(study: optuna.Study) -> int:
    """Trials that count toward the study's budget: complete, pruned, and failed by their own error
    (not those failed because their process died: those are run again)."""
    from optuna.trial import TrialState

    count = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
        count += t.state != TrialState.FAIL or "error" in t.user_attrs
    return count


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], float], *, trials: int,
               deadline: Deadline | None = None, callbacks: list[Callable[..., None]] | None = None) -> int:
    """Run trials of `study` in this process until it has `trials` finished ones (counted over every
    worker) or the deadline passes; returns how many this process ran. A failing trial is recorded as
    failed and the search goes on; Ctrl-C stops it."""
    from optuna.trial import TrialState

    ran = 0
    stop = {"interrupted": False}

    def after(st: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal ran
        ran += 1
        if trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted"):
            stop["interrupted"] = True
        for cb in callbacks or []:
            cb(st, trial)
        if stop["interrupted"] or finished(st) >= trials or (deadline is not None and deadline.remaining() <= 0):
            st.stop()

    if finished(study) >= trials or (deadline is not None and deadline.remaining() <= 0):
        return 0
    timeout = None if deadline is None or deadline.seconds is None else max(deadline.remaining(), 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental and grid notices; outcomes are in the study
        study.optimize(objective, timeout=timeout, catch=(Exception,), callbacks=[after], gc_after_trial=False)
    if stop["interrupted"]:
        raise Interrupted("tuning interrupted; the study keeps its trials: run the same command to go on")
    return ran


# ----------------------------------------------------------------------------- the objective


@dataclass
class TrialData:
    """The rows trials fit on: CV folds over train + validation, or the holdout parts."""

    X: pd.DataFrame
    y: pd.Series
    folds: list[tuple[np.ndarray, np.ndarray]] | None = None
    X_val: pd.DataFrame | None = None  # holdout mode: X, y are the training rows
    y_val: pd.Series | None = None


class _Reporter:
    """Sends a trial's intermediate scores to Optuna and stops the trial when the pruner says so.

    Steps are numbered fold * steps_per_fold + k, so trials compare at the same fold and iteration.
    Boosting and neural losses are signed to follow the study's direction.
    """

    def __init__(self, trial: optuna.Trial, maximize: bool, steps_per_fold: int, every: int) -> None:
        self.trial, self.maximize, self.steps, self.every = trial, maximize, steps_per_fold, every
        self.fold, self.iterations = 0, 0

    def report(self, k: int, value: float) -> None:
        import optuna

        if not math.isfinite(value):
            return
        step = self.fold * self.steps + k
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")

    def loss(self, k: int, value: float, higher_is_better: bool = False) -> None:
        self.report(k, value if higher_is_better == self.maximize else -value)

    def lightgbm(self) -> Callable[[Any], None]:
        def callback(env: Any) -> None:
            self.iterations += 1
            done = env.iteration + 1
            if done % self.every == 0 and env.evaluation_result_list:
                _, _, value, higher = env.evaluation_result_list[0][:4]
                self.loss(done // self.every, float(value), bool(higher))

        callback.order = 45  # after early stopping (30) and the deadline (40)
        return callback

    def epochs(self, forward: Callable[[str, dict[str, Any]], None] | None) -> Callable[[str, dict[str, Any]], None]:
        def sink(event: str, payload: dict[str, Any]) -> None:
            if forward is not None:
                forward(event, payload)
            if event == "epoch":
                self.iterations += 1
                value = payload.get("val_loss", payload.get("train_loss"))
                if isinstance(value, (int, float)):
                    self.loss(int(payload.get("epoch", 0)), float(value))

        return sink


def _json_params(params: Mapping[str, Any]) -> str:
    from forgeml.registry.package import jsonable

    return json.dumps(jsonable(dict(params)), sort_keys=True)


@dataclass
class Objective:
    """Score one configuration of `family`: fit_pipeline + the problem's metric, out-of-fold over the CV
    folds (or on the validation split), reporting as it goes. Returns the score; records in the trial's
    user attributes the params, fit time, boosting iterations or epochs done, fold spread and any error."""

    family: Family
    base: dict[str, Any]
    space: SearchSpace
    problem: Problem
    data: TrialData
    deadline: Deadline | None = None
    report_every: int = 20
    on_event: Callable[[str, dict[str, Any]], None] | None = None
    _iterative: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self._iterative = "lightgbm" if self.family.name == "lightgbm" else "neural" if self.family.neural else ""

    def _steps(self, params: Mapping[str, Any]) -> int:
        merged = {**self.family.defaults.get(self.problem.task, {}), **params}
        if self._iterative == "lightgbm":
            return int(merged.get("n_estimators", 100)) // self.report_every + 1
        if self._iterative == "neural":
            from forgeml.spec import NeuralSpec

            return int(merged.get("epochs") or NeuralSpec().epochs) + 1
        return 1

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        chosen = suggest(trial, self.space)
        key = _json_params(chosen)
        trial.set_user_attr("params", json.loads(key))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        twin = self._twin(trial, key)
        if twin is not None:  # a grid point or choice met before: its score, not a second fit
            trial.set_user_attr("duplicate_of", twin.number)
            for k in ("fit_time", "std"):
                if k in twin.user_attrs:
                    trial.set_user_attr(k, twin.user_attrs[k])
            return float(twin.value)
        params = {**self.base, **chosen}
        reporter = _Reporter(trial, self.problem.metric.greater_is_better, self._steps(params), self.report_every)
        start = time.monotonic()
        try:
            score, std = self._cv(params, reporter) if self.data.folds else self._holdout(params, reporter)
            if not math.isfinite(score):
                raise TrainingError(f"the {self.problem.metric.name} score is {score}")
            trial.set_user_attr("std", std)
            return score
        except optuna.TrialPruned:
            raise
        except (Interrupted, KeyboardInterrupt):
            trial.set_user_attr("interrupted", True)
            raise
        except Exception as exc:
            log.info("trial %d failed", trial.number, exc_info=True)
            trial.set_user_attr("error", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
            raise
        finally:
            trial.set_user_attr("fit_time", round(time.monotonic() - start, 4))
            trial.set_user_attr("iterations", reporter.iterations)

    def _twin(self, trial: optuna.Trial, key: str) -> optuna.trial.FrozenTrial | None:
        from optuna.trial import TrialState

        for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if done.value is not None and _json_params(done.user_attrs.get("params", {})) == key:
                return done
        return None

    def _fit(self, params, X, y, X_val, y_val, reporter: _Reporter) -> Any:
        import optuna

        from forgeml.events import forward_events
        from forgeml.tuning.automl import fit_pipeline

        callbacks = [reporter.lightgbm()] if self._iterative == "lightgbm" else None
        sink = reporter.epochs(self.on_event) if self._iterative == "neural" else self.on_event
        with forward_events(sink):
            pipe, size = fit_pipeline(self.family, params, self.problem, X, y, X_val, y_val, self.deadline,
                                      callbacks=callbacks)
        grow = self.family.grow
        target = {**self.family.defaults.get(self.problem.task, {}), **params}.get(grow) if grow else None
        if (self.deadline is not None and self.deadline.remaining() <= 0) or (target and size and size < int(target)):
            reporter.trial.set_user_attr("stopped", "stopped by the time limit")
            raise optuna.TrialPruned("the time limit ended the trial")
        return pipe

    def _holdout(self, params, reporter: _Reporter) -> tuple[float, float | None]:
        from forgeml.tuning.automl import predictions

        d, problem = self.data, self.problem
        pipe = self._fit(params, d.X, d.y, d.X_val, d.y_val, reporter)
        y_pred, proba = predictions(pipe, d.X_val, problem)
        return float(problem.metric(np.asarray(d.y_val), y_pred, proba, problem.classes)), None

    def _cv(self, params, reporter: _Reporter) -> tuple[float, float]:
        from forgeml.tuning.automl import label_array, predictions

        d, problem = self.data, self.problem
        classify = problem.task == "classification"
        y_pred = np.empty(len(d.X), dtype=object if classify else float)
        proba = np.zeros((len(d.X), len(problem.classes or []))) if classify else None
        scores = []
        for i, (tr, va) in enumerate(d.folds or []):
            reporter.fold = i
            pipe = self._fit(params, d.X.iloc[tr], d.y.iloc[tr], d.X.iloc[va], d.y.iloc[va], reporter)
            pred, prob = predictions(pipe, d.X.iloc[va], problem)
            y_pred[va] = pred
            if proba is not None:
                proba[va] = prob
            scores.append(float(problem.metric(np.asarray(d.y.iloc[va]), pred, prob, problem.classes)))
            if not self._iterative:
                reporter.report(0, float(np.mean(scores)))
        if classify:
            y_pred = label_array(list(y_pred))
        return float(problem.metric(np.asarray(d.y), y_pred, proba, problem.classes)), float(np.std(scores))


def trial_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The configuration a finished trial ran (its searched and fixed values), as plain values."""
    return dict(trial.user_attrs.get("params") or trial.params)
