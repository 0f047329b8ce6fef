"""One AutoML system on one train/test split, in a process of its own (used by bench_automl_systems.py).

    python automl_systems_worker.py JOB_DIR

JOB_DIR holds train.parquet, test.parquet and job.json ({"system", "task", "target", "budget",
"seed", "cores", "metric", "classes", "preset"}). The worker fits the system on train under the
budget, predicts test and writes JOB_DIR/result.json: test predictions (and class probabilities in
the order of job["classes"]), fit wall time, predict latency per row (one row at a time and the
whole test set), the library versions and, where the system exposes it, the trajectory of its best
validation score against seconds since the fit started. Scoring is left to the parent, so every
system is scored by the same code. Runs under forgeml's venv (forgeml, hgb) or a benchmark venv
(flaml, autogluon): it imports nothing that is not in all of them at module level.
"""

from __future__ import annotations

import importlib
import json
import statistics
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

LATENCY_ROWS = 50  # single-row predictions timed (the median is reported)


class Fitted:
    """A fitted system seen through one interface: labels, probabilities in the job's class order."""

    def __init__(self, predict, predict_proba=None):
        self.predict, self.predict_proba = predict, predict_proba


def fit_forgeml(job: dict, train: pd.DataFrame, workdir: Path) -> tuple[Fitted, dict]:
    """forgeml.train with the budget, no registration and no report; trajectory from its candidate events."""
    import os

    os.environ.setdefault("FORGEML_HOME", str(workdir / "forgeml-home"))
    import forgeml

    events: list[tuple[float, str, dict]] = []
    start = time.monotonic()
    result = forgeml.train(
        train, target=job["target"], time_limit=job["budget"], register=False, seed=job["seed"],
        metric=job["metric"]["forgeml"],
        # train + validation take every row given; the benchmark's test split is the held-out one
        spec={"split": {"train": 0.85, "validation": 0.15, "test": 0.0}, "output": {"report": False}},
        on_event=lambda event, payload: events.append((time.monotonic() - start, event, payload)),
    )
    fit_s = time.monotonic() - start
    model = result.model
    trajectory = [(t, p["score"]) for t, e, p in events if e == "candidate" and p.get("score") is not None]
    board = result.leaderboard
    info = {"fit_s": fit_s, "winner": model.family, "models_fitted": int((board["status"] == "ok").sum()),
            "models_tried": len(board), "leaderboard": board.replace({np.nan: None}).to_dict(orient="records"),
            "forgeml_elapsed_s": result.elapsed, "forgeml_fit_s": result.fit_seconds, "forgeml_from": forgeml.__file__}
    proba = (lambda X: model.predict_proba(X)[job["classes"]].to_numpy()) if job["task"] == "classification" else None
    return Fitted(lambda X: np.asarray(model.predict(X)), proba), {**info, "trajectory": _best_so_far(trajectory)}


def fit_hgb(job: dict, train: pd.DataFrame, workdir: Path) -> tuple[Fitted, dict]:
    """scikit-learn's HistGradientBoosting with its defaults: the baseline a user writes by hand."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    X, y = train.drop(columns=[job["target"]]), train[job["target"]]
    classify = job["task"] == "classification"
    start = time.monotonic()
    model = (HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor)(random_state=job["seed"]).fit(X, y)
    info = {"fit_s": time.monotonic() - start, "winner": "hist_gradient_boosting"}
    if not classify:
        return Fitted(model.predict), info
    order = [list(model.classes_).index(c) for c in job["classes"]]
    return Fitted(model.predict, lambda X: model.predict_proba(X)[:, order]), info


def fit_flaml(job: dict, train: pd.DataFrame, workdir: Path) -> tuple[Fitted, dict]:
    """FLAML's AutoML().fit(task, time_budget) on the same metric; trajectory from its trial log."""
    from flaml import AutoML

    X, y = train.drop(columns=[job["target"]]), train[job["target"]]
    log_file = workdir / "flaml.log"
    automl = AutoML()
    start = time.monotonic()
    automl.fit(X, y, task=job["task"], time_budget=job["budget"], metric=job["metric"]["flaml"],
               n_jobs=job["cores"], seed=job["seed"], log_file_name=str(log_file), log_type="all", verbose=0)
    fit_s = time.monotonic() - start
    trajectory = []
    for line in log_file.read_text().splitlines() if log_file.exists() else []:
        record = json.loads(line)
        if "wall_clock_time" in record and record.get("validation_loss") is not None:
            trajectory.append((record["wall_clock_time"], record["validation_loss"]))
    info = {"fit_s": fit_s, "winner": automl.best_estimator, "models_tried": len(trajectory),
            "best_config": automl.best_config, "best_validation_loss": automl.best_loss}
    proba = None
    if job["task"] == "classification":
        order = [list(automl.classes_).index(c) for c in job["classes"]]
        proba = lambda X: np.asarray(automl.predict_proba(X))[:, order]
    return Fitted(lambda X: np.asarray(automl.predict(X)), proba), {**info, "trajectory": _best_so_far(trajectory)}


def fit_autogluon(job: dict, train: pd.DataFrame, workdir: Path) -> tuple[Fitted, dict]:
    """AutoGluon-Tabular with the job's preset and time limit; trajectory from its leaderboard in fit order."""
    from autogluon.tabular import TabularPredictor

    problem = ("binary" if len(job["classes"]) == 2 else "multiclass") if job["task"] == "classification" else "regression"
    predictor = TabularPredictor(label=job["target"], problem_type=problem, eval_metric=job["metric"]["autogluon"],
                                 path=str(workdir / "autogluon-models"), verbosity=0)
    start = time.monotonic()
    predictor.fit(train, presets=job["preset"], time_limit=job["budget"], num_cpus=job["cores"], num_gpus=0)
    fit_s = time.monotonic() - start
    board = predictor.leaderboard(silent=True)
    # AutoGluon scores are higher-is-better (a loss is negated); its leaderboard holds each model's own fit time
    board = board.sort_values("fit_order") if "fit_order" in board else board
    seconds = board["fit_time_marginal"].fillna(0).cumsum()
    trajectory = [(float(t), -float(s)) for t, s in zip(seconds, board["score_val"], strict=True) if pd.notna(s)]
    info = {"fit_s": fit_s, "winner": predictor.model_best, "models_fitted": len(board),
            "leaderboard": board[["model", "score_val", "fit_time_marginal"]].to_dict(orient="records")}
    predictor.persist()  # models in memory, as AutoGluon advises for online inference
    proba = None
    if job["task"] == "classification":
        proba = lambda X: predictor.predict_proba(X)[job["classes"]].to_numpy()
    return Fitted(lambda X: np.asarray(predictor.predict(X)), proba), {**info, "trajectory": _best_so_far(trajectory)}


IMPORTS = {"forgeml": "forgeml", "hgb": "sklearn.ensemble", "flaml": "flaml", "autogluon": "autogluon.tabular"}
SYSTEMS = {"forgeml": fit_forgeml, "hgb": fit_hgb, "flaml": fit_flaml, "autogluon": fit_autogluon}
PACKAGES = {"forgeml": ["forgeml", "scikit-learn", "lightgbm", "catboost", "xgboost-cpu", "torch"],
            "hgb": ["scikit-learn"], "flaml": ["flaml", "scikit-learn", "lightgbm", "xgboost"],
            "autogluon": ["autogluon.tabular", "scikit-learn", "lightgbm", "catboost", "xgboost-cpu", "torch", "fastai"]}


def _best_so_far(points: list[tuple[float, float]]) -> list[list[float]]:
    """[[seconds, best loss so far], ...] in time order; each system reports a loss (lower is better)."""
    best, out = float("inf"), []
    for t, loss in sorted(points):
        best = min(best, loss)
        out.append([round(t, 3), best])
    return out


def _latency(fn, X: pd.DataFrame) -> dict[str, float]:
    """Milliseconds per row: the median of single-row calls, and one call on the whole test set."""
    fn(X.iloc[:1])  # warm-up: lazy imports and caches are not a row's cost
    singles = []
    for i in range(min(LATENCY_ROWS, len(X))):
        row = X.iloc[i : i + 1]
        start = time.perf_counter()
        fn(row)
        singles.append(time.perf_counter() - start)
    start = time.perf_counter()
    fn(X)
    batch = time.perf_counter() - start
    return {"single_row_ms": 1000 * statistics.median(singles), "single_row_p90_ms": 1000 * float(np.quantile(singles, 0.9)),
            "batch_ms_per_row": 1000 * batch / len(X)}


def _versions(system: str) -> dict[str, str]:
    found = {}
    for name in PACKAGES[system]:
        try:
            found[name] = version(name)
        except PackageNotFoundError:  # not installed in this venv
            continue
    return found


def main(job_dir: Path) -> None:
    job = json.loads((job_dir / "job.json").read_text())
    train, test = pd.read_parquet(job_dir / "train.parquet"), pd.read_parquet(job_dir / "test.parquet")
    X_test = test.drop(columns=[job["target"]])
    start = time.perf_counter()
    importlib.import_module(IMPORTS[job["system"]])  # the library's import is startup, not fitting
    import_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix=f"{job['system']}-") as tmp:
        fitted, info = SYSTEMS[job["system"]](job, train, Path(tmp))  # info["fit_s"]: the fit call's wall time
        scoring = fitted.predict_proba or fitted.predict  # what a served classifier returns: probabilities
        latency = _latency(scoring, X_test)
        pred = fitted.predict(X_test)
        proba = fitted.predict_proba(X_test) if fitted.predict_proba else None
    out = {"import_s": import_s, "latency": latency, "pred": np.asarray(pred).tolist(),
           "proba": None if proba is None else np.asarray(proba, dtype=float).tolist(),
           "versions": _versions(job["system"]), "python": sys.version.split()[0], **info}
    (job_dir / "result.json").write_text(json.dumps(out, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
