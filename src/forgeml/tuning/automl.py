"""Budgeted model selection: fit candidate families within a time limit and keep the best.

Small data is scored by k-fold cross-validation over train + validation (out-of-fold
predictions, so every row counts once and selection does not overfit a 20-row validation
set); large data by the validation split. Candidates are tried strongest-and-cheapest first;
a candidate whose estimated cost exceeds what is left of the budget is skipped, and boosting
(LightGBM, CatBoost, XGBoost) stops growing trees when the deadline arrives. The winner is
refitted on train + validation.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forgeml.errors import ForgeError, Interrupted, TrainingError
from forgeml.jobs import checkpoint_slot
from forgeml.models.zoo import Family

log = logging.getLogger(__name__)

EventFn = Callable[[str, dict[str, Any]], None]
SMALL_DATA_ROWS = 20_000
CANDIDATE_SHARE = 0.5  # the most of the time left one candidate may use while others wait
ENSEMBLE_POOL = 8
ENSEMBLE_ROWS = 5_000  # rows of out-of-fold / validation predictions the ensemble's weights are chosen on
MAX_TUNING_TRIALS = 40  # TPE's gains flatten well before this within an AutoML budget
ENSEMBLE_RESERVE = 0.1  # share of the time limit kept for refitting an ensemble's members  # the best candidates an ensemble may draw from (more adds overfitting, not accuracy)
# The boosting families (early-stopped, refitted at their best size) -> their thread-count parameter.
_BOOSTING = {"lightgbm": "n_jobs", "catboost": "thread_count", "xgboost": "n_jobs"}


class Deadline:
    """Seconds left of a time budget that started when the object was made (None: unlimited)."""

    def __init__(self, seconds: float | None, start: float | None = None) -> None:
        self.seconds = seconds
        self.start = time.monotonic() if start is None else start

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return float("inf") if self.seconds is None else self.seconds - self.elapsed()


@dataclass
class Candidate:
    family: str
    params: dict[str, Any]
    status: str = "ok"  # ok | skipped | failed | timeout
    score: float | None = None
    std: float | None = None
    fit_time: float = 0.0
    note: str = ""
    best_iteration: int | None = None
    config: str = "default"  # default | a portfolio variant | tuned #n | greedy / stacked (ensembles)
    predict_time: float | None = None  # seconds per row, measured on the validation predictions

    def row(self) -> dict[str, Any]:
        per_row = None if self.predict_time is None else float(f"{self.predict_time:.3g}")
        return {"family": self.family, "config": self.config, "score": self.score, "std": self.std,
                "fit_time": round(self.fit_time, 3), "predict_time_per_row": per_row, "status": self.status,
                "note": self.note}


@dataclass
class Selection:
    """What model selection produced: the refitted winner, its pre-refit fit, and the leaderboard."""

    winner: Candidate
    pipeline: Any  # the final fitted Pipeline (refitted on train + validation when asked)
    holdout_pipeline: Any  # the winner fitted on train only (None in cv mode): honest validation scores
    oof: dict[str, Any] | None  # cv mode: out-of-fold y_pred / proba of the winner over train + validation
    candidates: list[Candidate] = field(default_factory=list)
    mode: str = "holdout"
    refit_time: float = 0.0
    ensemble: bool = False  # the pipeline is an ensemble of several candidates

    @property
    def fit_seconds(self) -> float:
        """Time spent fitting models: every candidate plus the final refit."""
        return sum(c.fit_time for c in self.candidates) + self.refit_time

    @property
    def leaderboard(self) -> pd.DataFrame:
        return pd.DataFrame([c.row() for c in self.candidates],
                            columns=["family", "config", "score", "std", "fit_time", "predict_time_per_row", "status",
                                     "note"])


@dataclass
class Problem:
    """Everything a candidate fit needs that does not change between candidates."""

    task: str
    kinds: dict[str, str]
    preprocessing: Any  # PreprocessingSpec
    metric: Any  # forgeml.evaluation.metrics.Metric
    classes: list[Any] | None
    seed: int
    threshold: float | None = None  # binary: the positive class's probability cut (None: the most likely class)


# ----------------------------------------------------------------------------- one fit


def _deadline_callback(deadline: Deadline):
    import lightgbm as lgb

    def callback(env: Any) -> None:
        if deadline.remaining() <= 0:
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list or [])

    callback.order = 40  # run after early stopping's own bookkeeping
    return callback


def fit_pipeline(
    family: Family,
    params: dict[str, Any],
    problem: Problem,
    X: pd.DataFrame,
    y: pd.Series,
    X_val: pd.DataFrame | None = None,
    y_val: pd.Series | None = None,
    deadline: Deadline | None = None,
    callbacks: list[Any] | None = None,
) -> tuple[Any, int | None]:
    """Fit preprocessing + estimator on (X, y); boosting early-stops on (X_val, y_val) when given.
    callbacks: extra LightGBM callbacks, run after every boosting round (tuning reports and prunes there).

    Returns the fitted Pipeline and the fitted size where it was decided while fitting: the best
    boosting iteration (LightGBM, CatBoost, XGBoost) or the members grown before the deadline
    (families with `grow`).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = _fit(family, params, problem, X, y, X_val, y_val, deadline, callbacks)
    for w in caught:  # library chatter (convergence, deprecations) goes to the log, not the user's terminal
        log.debug("%s while fitting %s: %s", w.category.__name__, family.name, w.message)
    return fitted


def _fit(family, params, problem, X, y, X_val, y_val, deadline, extra_callbacks=None) -> tuple[Any, int | None]:
    from sklearn.pipeline import Pipeline

    from forgeml.data.prepare import build_preprocessor

    prep = build_preprocessor(problem.kinds, problem.preprocessing, problem.task, seed=problem.seed,
                              scale=family.scale, sparse_ok=family.sparse_ok, inputs=family.inputs)
    if family.inputs != "table":  # a network reads one kind of column: the model asks for those columns only
        X = X[[c for _, _, columns in prep.transformers for c in columns]]
    Xt = prep.fit_transform(X, y)
    params = {**_input_params(family, prep), **params}
    if family.neural and deadline is not None and deadline.seconds is not None:
        params.setdefault("max_time", max(deadline.remaining(), 0.1))  # a network stops when its time is up
    rounds = {**family.defaults.get(problem.task, {}), **params}.get("early_stopping_rounds")
    threads = _BOOSTING.get(family.name)
    if threads and threads not in params and len(X) < SMALL_DATA_ROWS:
        # Threads cost more than they bring on small data, and OpenMP threads stall when cores are shared.
        params[threads] = 1
    estimator = family.make(problem.task, params, problem.seed)
    best = None
    if family.name == "lightgbm":
        import lightgbm as lgb

        callbacks = ([_deadline_callback(deadline)] if deadline is not None else []) + list(extra_callbacks or [])
        fit_kwargs: dict[str, Any] = {}
        if X_val is not None and len(X_val) and rounds:
            # eval_set is deprecated in LightGBM 4.7 for eval_X/eval_y, whose label encoding still fails on
            # string classes; the deprecation warning is captured with the other fit chatter.
            fit_kwargs["eval_set"] = [(prep.transform(X_val), y_val)]
            callbacks.insert(0, lgb.early_stopping(int(rounds), verbose=False))
        estimator.fit(Xt, y, callbacks=callbacks, **fit_kwargs)
        best = int(estimator.best_iteration_ or estimator.n_estimators_)
    elif family.name in ("catboost", "xgboost"):  # forgeml.models.boosting wrappers
        val = (prep.transform(X_val), y_val) if X_val is not None and len(X_val) and rounds else None
        stop = (lambda: deadline.remaining() <= 0) if deadline is not None else None
        estimator.fit(Xt, y, eval_set=val, early_stopping_rounds=rounds, should_stop=stop)
        best = int(estimator.n_estimators_)
    elif family.grow and deadline is not None and deadline.seconds is not None:
        best = _grow_within(estimator, family.grow, Xt, y, deadline)
    else:
        estimator.fit(Xt, y)
    return Pipeline([("prepare", prep), ("model", estimator)]), best


def _input_params(family: Family, prep: Any) -> dict[str, Any]:
    """What a network must know of its fitted preprocessor: the CNN its image shape, a sequence network
    reading raw text its tokenizer (word level unless the spec says otherwise)."""
    if family.inputs == "image":
        return {"image_shape": list(prep.named_transformers_["img"].image_shape_)}
    if family.inputs == "sequence" and "text" in prep.named_transformers_:
        return {"tokenizer": "word"}
    return {}


def _grow_within(estimator: Any, param: str, X: Any, y: Any, deadline: Deadline, steps: int = 10) -> int:
    """Fit an ensemble in `steps` chunks with warm_start until it reaches its size or the deadline.

    The first chunk times one member; each later chunk is only as large as the time left affords.
    Returns the number of members grown.
    """
    target = int(estimator.get_params()[param])
    step = max(1, target // steps)
    size = min(step, target)
    estimator.set_params(warm_start=True, **{param: size})
    start = time.monotonic()
    estimator.fit(X, y)
    per_member = max(time.monotonic() - start, 1e-6) / size
    while size < target:
        # 15 % of the time left stays for predicting with the grown ensemble (scoring, evaluation)
        affordable = int(0.85 * deadline.remaining() / per_member)
        if affordable < 1:
            break
        size = min(target, size + min(step, affordable))
        estimator.set_params(**{param: size})
        estimator.fit(X, y)
    estimator.set_params(warm_start=False)
    return size


def aligned_proba(pipeline: Any, X: pd.DataFrame, classes: list[Any]) -> np.ndarray:
    """predict_proba with columns in `classes` order, zeros for classes the fit never saw."""
    raw = pipeline.predict_proba(X)
    fitted = list(pipeline.classes_)
    if fitted == list(classes):
        return raw
    out = np.zeros((len(X), len(classes)))
    index = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(fitted):
        out[:, index[c]] = raw[:, j]
    return out


def label_array(labels: list[Any]) -> np.ndarray:
    """Labels as an array of their natural dtype: object arrays of ints read as 'unknown' to sklearn's metrics."""
    return np.asarray(list(labels))


def predictions(pipeline: Any, X: pd.DataFrame, problem: Problem) -> tuple[np.ndarray, np.ndarray | None]:
    """(y_pred, proba) of a fitted pipeline; proba is None for regression."""
    if problem.task == "classification":
        proba = aligned_proba(pipeline, X, problem.classes or [])
        if problem.threshold is not None:
            from forgeml.tuning.threshold import label_at

            return label_at(proba[:, 1], problem.threshold, list(problem.classes or [])), proba
        return label_array(problem.classes or [])[proba.argmax(axis=1)], proba
    return np.asarray(pipeline.predict(X)), None


def _score(problem: Problem, y_true: Any, y_pred: Any, proba: Any) -> float:
    return float(problem.metric(np.asarray(y_true), y_pred, proba, problem.classes))


# ----------------------------------------------------------------------------- selection


def _refit_params(family: Family, params: dict[str, Any], best: int | None, grow: float) -> dict[str, Any]:
    """Params for refitting on more data: boosting keeps its early-stopped size scaled by the data growth;
    an ensemble cut short by the deadline keeps the size it reached."""
    if family.name in _BOOSTING and best:
        return {**params, "n_estimators": max(1, int(round(best * grow))), "early_stopping_rounds": None}
    if family.grow and best:
        return {**params, family.grow: best}
    return params


def _refit_estimate(cand: Candidate, n_fits: int, growth: float) -> float:
    """Seconds the refit of `cand` on train + validation should take, from its measured fits."""
    return cand.fit_time / max(n_fits, 1) * growth


@dataclass
class _Entry:
    """One scored candidate: what an ensemble or the final refit needs of it."""

    cand: Candidate
    family: Family
    fitted: Any  # holdout mode: the fit on train; cv mode: the last fold's fit (None when not kept)
    preds: Any  # out-of-fold (cv) or validation (holdout) probabilities (classification) or values


def select_model(
    families: list[tuple[Family, dict[str, Any]] | tuple[Family, dict[str, Any], str]],
    problem: Problem,
    train: tuple[pd.DataFrame, pd.Series],
    validation: tuple[pd.DataFrame, pd.Series],
    *,
    folds: list[tuple[np.ndarray, np.ndarray]] | None,
    deadline: Deadline,
    reserve: float,
    refit: bool,
    on_event: EventFn | None = None,
    tune_share: float = 0.0,
    ensemble: bool = False,
) -> Selection:
    """Fit each (family, params[, config name]) in order within the deadline and return the best by the
    problem's metric.

    reserve: seconds kept for evaluation and registration; the refit of the current best is kept on top.
    folds: positional (train_idx, val_idx) over train + validation concatenated; when given, candidates
    are scored by out-of-fold predictions (cv mode), otherwise on the validation split (holdout mode).
    Each candidate gets a deadline of its own (what is left after the reserves), which LightGBM's
    callback and growable ensembles obey, so one slow family cannot eat the whole budget.
    tune_share: share of the time left after the portfolio spent on a TPE search of the leading family
    (its trials join the candidates). ensemble: try greedy ensemble selection and stacking over the
    candidates' out-of-fold (or validation) predictions; kept only when it beats the best single model.
    """
    emit = on_event or (lambda _event, _payload: None)
    X_tr, y_tr = train
    X_va, y_va = validation
    X_all = pd.concat([X_tr, X_va]) if len(X_va) else X_tr
    y_all = pd.concat([y_tr, y_va]) if len(y_va) else y_tr
    y_scored = y_all if folds else y_va
    mode = "cv" if folds else "holdout"
    n_fits = len(folds) if folds else 1
    # how much more data the final refit sees than one scoring fit
    growth = len(X_all) / max(np.mean([len(tr) for tr, _ in folds]), 1) if folds else len(X_all) / max(len(X_tr), 1)
    sign = 1.0 if problem.metric.greater_is_better else -1.0
    candidates: list[Candidate] = []
    entries: list[_Entry] = []
    errors: list[Exception] = []
    best: _Entry | None = None
    seconds_per_cost: float | None = None

    def refits(family: Family) -> bool:
        """Whether the winner is refitted on train + validation: always after CV; after holdout selection
        when asked, except networks (early-stopped on held-out rows already, and the costliest to refit)."""
        return bool(folds) or (refit and not family.neural)

    def skip(cand: Candidate, note: str) -> None:
        cand.status, cand.note = "skipped", note
        emit("candidate", cand.row())

    # With ensembling on, a tenth of the budget is kept for refitting the ensemble's members.
    ensemble_reserve = ENSEMBLE_RESERVE * deadline.seconds if ensemble and deadline.seconds else 0.0

    def held() -> float:
        refit_best = _refit_estimate(best.cand, n_fits, growth) if best and refits(best.family) else 0.0
        return reserve + refit_best + (ensemble_reserve if len(entries) > 1 else 0.0)

    def run(family: Family, params: dict[str, Any], config: str, budget: float, first: bool,
            cap: float = 1.0) -> Candidate:
        """Score one configuration within `budget` seconds; record it; keep it when it is the best."""
        nonlocal best, seconds_per_cost
        cand = Candidate(family.name, params, config=config)
        candidates.append(cand)
        # The first candidate always runs and finishes (a run must end with a model); with no best yet to
        # hold a refit reserve for, it shares its budget with its own refit (when it will have one).
        share = 1.0 + growth / n_fits if first and refits(family) else 1.0
        own = Deadline(None if deadline.seconds is None else max(budget, 0.0) / share * cap)
        emit("candidate_start", {"family": family.name, "config": config})
        start = time.monotonic()
        preds = fitted = None
        try:
            if folds:
                cand.score, cand.std, oof, cand.best_iteration, complete, fitted = _cross_validate(
                    family, params, problem, X_all, y_all, folds, own, must_finish=first)
                cand.predict_time = oof.get("predict_time", 0.0) / max(len(X_all), 1) if complete else None
                preds = oof.get("proba") if problem.task == "classification" else oof.get("y_pred")
                if not complete:
                    cand.status, cand.note = "timeout", "budget ran out between folds"
            else:
                with checkpoint_slot(f"{family.name}-holdout"):
                    fitted, cand.best_iteration = fit_pipeline(family, params, problem, X_tr, y_tr, X_va, y_va, own)
                tick = time.perf_counter()
                y_pred, proba = predictions(fitted, X_va, problem)
                cand.predict_time = (time.perf_counter() - tick) / max(len(X_va), 1)
                cand.score = _score(problem, y_va, y_pred, proba)
                preds = proba if problem.task == "classification" else y_pred
            if family.grow and cand.best_iteration and cand.best_iteration < _size(family, problem.task, params):
                cand.note = f"{cand.best_iteration} of {_size(family, problem.task, params)} {family.grow} in the budget"
        except Interrupted:
            raise
        except Exception as exc:  # one family failing must not sink the run
            log.debug("candidate %s failed", family.name, exc_info=True)
            errors.append(exc)
            cand.status, cand.note = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        cand.fit_time = time.monotonic() - start
        rate = cand.fit_time / (family.cost_at(len(X_all)) * n_fits)
        seconds_per_cost = rate if seconds_per_cost is None else max(seconds_per_cost, rate)
        emit("candidate", cand.row())
        if cand.status != "ok" or cand.score is None or not np.isfinite(cand.score):
            return cand
        entry = _Entry(cand, family, fitted, preds)
        entries.append(entry)
        if best is None or sign * cand.score > sign * best.cand.score:
            best = entry
        return cand

    for position, entry in enumerate(families):
        family, params = entry[0], entry[1]
        config = entry[2] if len(entry) > 2 else "default"
        budget = deadline.remaining() - held()
        if family.max_rows is not None and len(X_all) > family.max_rows:
            cand = Candidate(family.name, params, config=config)
            candidates.append(cand)
            skip(cand, f"more than {family.max_rows:,} rows")
            continue
        if best is not None and budget <= 0:
            cand = Candidate(family.name, params, config=config)
            candidates.append(cand)
            skip(cand, "no time left")
            continue
        if seconds_per_cost is not None:
            # Estimated from the slowest rate seen so far; the refit adds about one more fit.
            estimate = seconds_per_cost * family.cost_at(len(X_all)) * (n_fits + growth)
            if estimate > budget and not family.grow:
                cand = Candidate(family.name, params, config=config)
                candidates.append(cand)
                skip(cand, f"needs ~{estimate:.0f}s, {max(budget, 0):.0f}s left")
                continue
        # One candidate may not take more than half of what is left while others wait (the first must finish).
        more = position < len(families) - 1
        run(family, params, config, budget, first=best is None, cap=CANDIDATE_SHARE if more and best else 1.0)

    if best is None:
        if errors and all(isinstance(e, ForgeError) for e in errors):
            raise errors[0]  # the data or the settings do not fit the families asked for: say so as it is
        failures = [f"{c.family}: {c.note}" for c in candidates if c.note]
        raise TrainingError(
            "no model could be trained within the budget ("
            + ("; ".join(failures[:3]) or "no candidate family")
            + "); raise --time-limit or choose other models"
        )

    if tune_share > 0 and deadline.seconds is not None:
        _tune_leader(best, problem, deadline, held, tune_share, run, emit)

    refit_start = time.monotonic()
    final = _ensemble(entries, best, problem, y_scored, X_all, y_all, deadline, reserve, refits, n_fits, growth,
                      candidates, emit) if ensemble and len(entries) > 1 else None
    if final is not None:
        winner, pipeline, scored = final
        return Selection(winner=winner, pipeline=pipeline, holdout_pipeline=None, oof=scored, candidates=candidates,
                         mode=mode, refit_time=time.monotonic() - refit_start, ensemble=True)

    winner, fitted, oof, family = best.cand, best.fitted, _oof_of(best, problem), best.family
    left = deadline.remaining() - reserve
    if not refits(family) and fitted is not None:
        winner.note = (winner.note + "; " if winner.note else "") + "networks are not refitted after holdout selection"
        final_pipe = fitted
    elif fitted is not None and left < 0.75 * _refit_estimate(winner, n_fits, growth):
        # A refit cut short by the deadline would be worse than the model already fitted on most of the data.
        share = "the last fold's fit" if folds else "the fit on the training split"
        winner.note = (winner.note + "; " if winner.note else "") + f"not refitted ({left:.0f}s left): {share}"
        final_pipe = fitted
    elif refits(family) or fitted is None:
        emit("stage", {"name": f"refit {winner.family}"})
        params = _refit_params(family, winner.params, winner.best_iteration, growth)
        own = Deadline(None if deadline.seconds is None else max(left, 0.0))
        with checkpoint_slot(f"{family.name}-refit"):
            final_pipe, _ = fit_pipeline(family, params, problem, X_all, y_all, deadline=own)
    else:
        final_pipe = fitted
    return Selection(winner=winner, pipeline=final_pipe, holdout_pipeline=fitted if not folds else None,
                     oof=oof if folds else None, candidates=candidates, mode=mode,
                     refit_time=time.monotonic() - refit_start)


def _oof_of(entry: _Entry, problem: Problem) -> dict[str, Any] | None:
    """The {"y_pred", "proba"} out-of-fold predictions of a cv-mode entry, from its kept predictions."""
    if entry.preds is None:
        return None
    if problem.task == "classification":
        proba = np.asarray(entry.preds)
        return {"y_pred": label_array(problem.classes or [])[proba.argmax(axis=1)], "proba": proba}
    return {"y_pred": np.asarray(entry.preds), "proba": None}


def _tune_leader(best, problem, deadline, held, share, run, emit) -> None:
    """A seeded TPE search of the leading family's space in `share` of the time left; trials are candidates."""
    from forgeml.tuning.search import family_space, make_sampler, suggest

    leader = best
    if not leader.family.space or leader.family.neural:
        return
    try:
        import optuna

        space = family_space(leader.family, problem.task, {}, None)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize" if problem.metric.greater_is_better else "minimize",
                                    sampler=make_sampler("tpe", space, seed=problem.seed))
    except Exception:  # a space the search cannot take: no tuning, the portfolio stands
        log.debug("tuning %s skipped", leader.family.name, exc_info=True)
        return
    stop_at = deadline.elapsed() + share * max(deadline.remaining() - held(), 0.0)
    number = 0
    while True:
        per_trial = leader.cand.fit_time
        if deadline.elapsed() + per_trial > stop_at or number >= MAX_TUNING_TRIALS:
            break
        if not number:
            emit("stage", {"name": f"tune {leader.family.name}"})
        trial = study.ask()
        params = {**leader.cand.params, **suggest(trial, space)}
        number += 1
        cand = run(leader.family, params, f"tuned #{number}", min(per_trial * 1.5, deadline.remaining() - held()),
                   first=False)
        if cand.status == "ok" and cand.score is not None and np.isfinite(cand.score):
            study.tell(trial, cand.score)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _ensemble(entries, best, problem, y_scored, X_all, y_all, deadline, reserve, refits, n_fits, growth,
              candidates, emit) -> tuple[Candidate, Any, dict[str, Any]] | None:
    """An ensemble of the candidates when it beats the best single one and its members can be refitted in
    the time left; adds its row to the leaderboard either way. Returns (its candidate, its pipeline, its
    predictions of the scored rows: the members' out-of-fold or validation predictions, combined) or None."""
    from sklearn.pipeline import Pipeline

    from forgeml.tuning.ensemble import choose

    sign = 1.0 if problem.metric.greater_is_better else -1.0
    pool = sorted((e for e in entries if e.preds is not None), key=lambda e: -sign * e.cand.score)[:ENSEMBLE_POOL]
    if len(pool) < 2:
        return None
    emit("stage", {"name": "ensemble"})
    start = time.monotonic()
    cand = Candidate("ensemble", {}, config="greedy")
    y_scored, preds = np.asarray(y_scored), [np.asarray(e.preds) for e in pool]
    if len(y_scored) > ENSEMBLE_ROWS:  # weights from a sample: as good, and the search costs no more on big data
        rows = np.sort(np.random.default_rng(problem.seed).choice(len(y_scored), ENSEMBLE_ROWS, replace=False))
        y_scored, preds = y_scored[rows], [p[rows] for p in preds]
    try:
        plan, scores = choose(preds, y_scored, problem.metric, task=problem.task, classes=problem.classes,
                              seed=problem.seed)
    except Exception as exc:  # an ensemble is an extra; its failure leaves the best single model
        log.debug("ensemble failed", exc_info=True)
        cand.status, cand.note = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        candidates.append(cand)
        return None
    tried = {k: v for k, v in scores.items() if k != "best_single" and np.isfinite(v)}
    if tried:
        method = max(tried, key=lambda k: sign * tried[k])
        cand.config, cand.score = method, float(tried[method])
    cand.fit_time = time.monotonic() - start
    candidates.append(cand)
    if plan is None:
        cand.status, cand.note = "skipped", f"does not beat {best.cand.family} ({best.cand.config})"
        emit("candidate", cand.row())
        return None
    members = [pool[i] for i in plan.members]
    cand.config, cand.score = plan.method, float(plan.score)
    cand.params = {"members": [f"{m.cand.family} ({m.cand.config})" for m in members],
                   **({"weights": [round(float(w), 4) for w in plan.weights]} if plan.weights is not None else {})}
    need = sum(_refit_estimate(m.cand, n_fits, growth) for m in members if refits(m.family))
    left = deadline.remaining() - reserve
    as_fitted = deadline.seconds is not None and need > left  # no time to refit: the fits scoring made
    if as_fitted and any(m.fitted is None for m in members):
        cand.status, cand.note = "skipped", f"its {len(members)} members need ~{need:.0f}s to refit, {max(left, 0):.0f}s left"
        emit("candidate", cand.row())
        return None
    emit("stage", {"name": f"refit {len(members)} ensemble members" if not as_fitted else "ensemble"})
    fitted = []
    for m in members:
        if not as_fitted and (refits(m.family) or m.fitted is None):
            params = _refit_params(m.family, m.cand.params, m.cand.best_iteration, growth)
            with checkpoint_slot(f"{m.family.name}-ensemble"):
                pipe, _ = fit_pipeline(m.family, params, problem, X_all, y_all,
                                       deadline=Deadline(None if deadline.seconds is None else max(left, 0.0)))
            fitted.append(pipe)
        else:
            fitted.append(m.fitted)
    cand.fit_time = time.monotonic() - start
    cand.predict_time = sum(m.cand.predict_time or 0.0 for m in members)
    cand.note = f"{plan.method} over {len(members)} models, beats the best single model ({best.cand.score:.4f})"
    if as_fitted:
        cand.note += "; members not refitted (no time): their last-fold fits" if n_fits > 1 else \
            "; members not refitted (no time): their fits on the training split"
    emit("candidate", cand.row())
    return cand, Pipeline([("model", plan.build(fitted))]), _combined(plan, [m.preds for m in members], problem)


def _combined(plan: Any, preds: list[Any], problem: Problem) -> dict[str, Any]:
    """{"y_pred", "proba"} of an ensemble plan from its members' predictions of the scored rows."""
    out = np.asarray(plan.combine(preds))
    if problem.task == "classification":
        return {"y_pred": label_array(problem.classes or [])[out.argmax(axis=1)], "proba": out}
    return {"y_pred": out.astype(float), "proba": None}


def _size(family: Family, task: str, params: dict[str, Any]) -> int:
    return int({**family.defaults.get(task, {}), **params}.get(family.grow, 100))


def _cross_validate(
    family: Family,
    params: dict[str, Any],
    problem: Problem,
    X: pd.DataFrame,
    y: pd.Series,
    folds: list[tuple[np.ndarray, np.ndarray]],
    deadline: Deadline,
    must_finish: bool = False,
) -> tuple[float, float, dict[str, Any], int | None, bool, Any]:
    """Out-of-fold score (and fold std) of one family within `deadline`, each fold getting an equal share
    of what is left; gives up between folds when the time is gone (unless `must_finish`). Also returns
    the best iteration/size, whether every fold ran, and the last fold's pipeline (kept as the model when
    no time is left to refit)."""
    n = len(X)
    classify = problem.task == "classification"
    y_pred = np.zeros(n)  # regression: sums over repeats
    proba = np.zeros((n, len(problem.classes or []))) if classify else None
    seen = np.zeros(n)
    fold_scores, sizes, predict_time = [], [], 0.0
    for i, (tr, va) in enumerate(folds):
        if i and not must_finish and deadline.remaining() <= 0:
            return float("nan"), float("nan"), {}, None, False, None
        share = None if deadline.seconds is None else max(deadline.remaining(), 0.0) / (len(folds) - i)
        with checkpoint_slot(f"{family.name}-fold{i + 1}"):
            pipe, size = fit_pipeline(family, params, problem, X.iloc[tr], y.iloc[tr], X.iloc[va], y.iloc[va],
                                      Deadline(share))
        tick = time.perf_counter()
        pred, prob = predictions(pipe, X.iloc[va], problem)
        predict_time += time.perf_counter() - tick
        seen[va] += 1
        if classify:
            proba[va] += prob
        else:
            y_pred[va] += pred
        fold_scores.append(_score(problem, y.iloc[va], pred, prob))
        if size:
            sizes.append(size)
    repeats = np.maximum(seen, 1)  # with repeated CV each row was predicted once per repeat: the mean
    if classify:
        proba = proba / repeats[:, None]
        y_pred = label_array(problem.classes or [])[proba.argmax(axis=1)]
    else:
        y_pred = y_pred / repeats
    score = _score(problem, y, y_pred, proba)
    size = int(np.mean(sizes)) if sizes else None
    oof = {"y_pred": y_pred, "proba": proba, "predict_time": predict_time}
    return score, float(np.std(fold_scores)), oof, size, True, pipe
