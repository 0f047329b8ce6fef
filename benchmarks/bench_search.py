"""How efficient is forgeml's Optuna search: TPE against random search, and pruning against none?

Both claims use forgeml's own search parts (`family_space`, `make_sampler`, `make_pruner`, `Objective`,
`run_trials`, `open_study`) on one fixed objective: a LightGBM classifier (or regressor) with
n_estimators 200 and early stopping after 20 rounds, over the zoo's full LightGBM space (7 dimensions),
scored out-of-fold on fixed 3-fold CV of a bundled dataset (default breast_cancer, log loss). Studies
live in memory; nothing is written to the model store and nothing is cached between searches.

1. TPE vs random (baseline: random search). For each seed s, TPE (seed s) and random search (seed
   1000 + s) each run 100 trials without pruning; we record random's best-of-100 and the first trial at
   which TPE's best is at least as good. Target: median over seeds <= 40 trials.
2. Pruning vs none (baseline: the same search without pruning). The same sampler and seed run 50 trials
   with pruner none, median and hyperband; we record boosting iterations grown (summed over trials and
   folds), wall time, trials pruned and the best score. Target: iterations(none) / iterations(pruned) >= 2.

Writes benchmarks/results/search_efficiency.json.

    python benchmarks/bench_search.py [--dataset breast_cancer] [--seeds 9] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASETS = {"breast_cancer": ("classification", "log_loss"), "digits": ("classification", "log_loss"),
            "diabetes": ("regression", "rmse")}
BASE = {"n_estimators": 200, "early_stopping_rounds": 20}  # cheap trials on 2 cores; the space is the zoo's
FOLDS = 3
REACH_TARGET, PRUNE_TARGET = 40, 2.0
RANDOM_SEED_OFFSET = 1000


@dataclass
class Setup:
    """The one objective every search in this run optimises."""

    dataset: str
    family: Any
    space: Any
    problem: Any
    data: Any
    report_every: int

    @property
    def maximize(self) -> bool:
        return bool(self.problem.metric.greater_is_better)


def make_setup(dataset: str) -> Setup:
    """The dataset, its fixed CV folds, the Problem and the LightGBM space (zoo space, BASE pinned)."""
    import sklearn.datasets

    from forgeml.data.split import cv_folds
    from forgeml.evaluation.metrics import get_metric
    from forgeml.models.zoo import get_family
    from forgeml.spec import PreprocessingSpec, SplitSpec, TuningSpec
    from forgeml.tuning.automl import Problem
    from forgeml.tuning.search import TrialData, family_space

    task, metric = DATASETS[dataset]
    frame = getattr(sklearn.datasets, f"load_{dataset}")(as_frame=True).frame
    if task == "classification":  # string labels, as a user's table would have them
        frame["target"] = frame["target"].map(lambda v: f"class_{v}")
    X, y = frame.drop(columns="target"), frame["target"]
    folds = cv_folds(frame, "target", SplitSpec(), task, seed=0, n_folds=FOLDS)
    problem = Problem(task=task, kinds={c: "numeric" for c in X.columns}, preprocessing=PreprocessingSpec(),
                      metric=get_metric(metric), classes=sorted(y.unique()) if task == "classification" else None,
                      seed=0)
    family = get_family("lightgbm")
    return Setup(dataset, family, family_space(family, task, BASE, None), problem, TrialData(X, y, folds=folds),
                 TuningSpec().report_every)


def search(setup: Setup, sampler: str, pruner: str, seed: int, trials: int) -> tuple[Any, float]:
    """One fresh in-memory study of `trials` trials; returns the study and its wall time in seconds."""
    from forgeml.tuning.search import (
        Objective,
        make_pruner,
        make_sampler,
        open_study,
        run_trials,
    )

    study = open_study(f"bench-{sampler}-{pruner}-{seed}", direction="maximize" if setup.maximize else "minimize",
                       sampler=make_sampler(sampler, setup.space, seed=seed, trials=trials),
                       pruner=make_pruner(pruner))
    objective = Objective(setup.family, dict(BASE), setup.space, setup.problem, setup.data,
                          report_every=setup.report_every)
    start = time.perf_counter()
    run_trials(study, objective, trials=trials)
    return study, time.perf_counter() - start


def best_so_far(study: Any, maximize: bool) -> list[float | None]:
    """The study's best completed score after each trial (None before the first completed one)."""
    best, curve = None, []
    for t in sorted(study.trials, key=lambda t: t.number):
        if t.state.name == "COMPLETE" and t.value is not None:
            best = t.value if best is None else (max if maximize else min)(best, t.value)
        curve.append(best)
    return curve


def trials_to_reach(curve: list[float | None], goal: float, maximize: bool) -> int | None:
    """How many trials the curve needs to be at least as good as `goal`; None when it never is."""
    for i, value in enumerate(curve, start=1):
        if value is not None and (value >= goal if maximize else value <= goal):
            return i
    return None


def tpe_vs_random(setup: Setup, seeds: list[int], trials: int) -> dict[str, Any]:
    """Claim 1: per seed, random's best-of-`trials` and the trials TPE needs to reach it."""
    rows = []
    for seed in seeds:
        # TPE's start-up trials come from a RandomSampler with TPE's seed: random search gets another seed, so
        # the two searches are independent rather than sharing their first trials.
        rand, rand_wall = search(setup, "random", "none", RANDOM_SEED_OFFSET + seed, trials)
        tpe, tpe_wall = search(setup, "tpe", "none", seed, trials)
        r_curve, t_curve = best_so_far(rand, setup.maximize), best_so_far(tpe, setup.maximize)
        goal = r_curve[-1]
        reach = trials_to_reach(t_curve, goal, setup.maximize)
        at = min(REACH_TARGET, trials) - 1
        rows.append({"seed": seed, "random_seed": RANDOM_SEED_OFFSET + seed, "random_best": goal,
                     "random_best_found_at": trials_to_reach(r_curve, goal, setup.maximize),
                     "tpe_best": t_curve[-1], "tpe_trials_to_reach_random_best": reach,
                     f"tpe_best_after_{at + 1}": t_curve[at], f"random_best_after_{at + 1}": r_curve[at],
                     "random_wall_s": round(rand_wall, 2), "tpe_wall_s": round(tpe_wall, 2),
                     "failed_trials": sum(t.state.name == "FAIL" for t in (*rand.trials, *tpe.trials))})
        print(f"seed {seed}: random best-of-{trials} {goal:.5f} (trial {rows[-1]['random_best_found_at']}), "
              f"TPE reaches it at {reach or 'not reached'}, TPE best {t_curve[-1]:.5f}  "
              f"[{rand_wall:.0f} s / {tpe_wall:.0f} s]", flush=True)
    reached = [r["tpe_trials_to_reach_random_best"] for r in rows]
    median = statistics.median([float("inf") if n is None else n for n in reached])
    median_out = None if median == float("inf") else median
    return {"trials": trials, "seeds": seeds, "pruner": "none", "per_seed": rows,
            "trials_to_reach": reached, "median_trials_to_reach": median_out,
            "seeds_reached": sum(n is not None for n in reached),
            "tpe_better_at_end": sum((r["tpe_best"] >= r["random_best"]) if setup.maximize else
                                     (r["tpe_best"] <= r["random_best"]) for r in rows),
            "target": REACH_TARGET, "met": median_out is not None and median_out <= REACH_TARGET}


def pruning(setup: Setup, samplers: list[str], seeds: list[int], trials: int) -> dict[str, Any]:
    """Claim 2: the same sampler and seed with pruner none, median and hyperband."""
    runs = []
    for sampler in samplers:
        for seed in seeds:
            for pruner in ("none", "median", "hyperband"):
                study, wall = search(setup, sampler, pruner, seed, trials)
                states = [t.state.name for t in study.trials]
                fit = sum(float(t.user_attrs.get("fit_time", 0.0)) for t in study.trials)  # in the objective
                runs.append({"sampler": sampler, "seed": seed, "pruner": pruner, "wall_s": round(wall, 2),
                             "objective_s": round(fit, 2),
                             "iterations": sum(int(t.user_attrs.get("iterations", 0)) for t in study.trials),
                             "pruned": states.count("PRUNED"), "complete": states.count("COMPLETE"),
                             "failed": states.count("FAIL"), "best": study.best_value})
                r = runs[-1]
                print(f"{sampler:<6} seed {seed} {pruner:<9}: {r['iterations']:>6} iterations, {wall:5.1f} s, "
                      f"{r['pruned']:>2} pruned, best {r['best']:.5f}", flush=True)
    summary: dict[str, Any] = {}
    for sampler in samplers:
        mine = [r for r in runs if r["sampler"] == sampler]
        keys = ("iterations", "wall_s", "objective_s", "pruned")
        total = {p: {k: sum(r[k] for r in mine if r["pruner"] == p) for k in keys}
                 for p in ("none", "median", "hyperband")}
        summary[sampler] = {}
        for p, tot in total.items():
            per_seed = {r["seed"]: r["best"] for r in mine if r["pruner"] == p}
            plain = {r["seed"]: r["best"] for r in mine if r["pruner"] == "none"}
            summary[sampler][p] = {
                "iterations": tot["iterations"], "wall_s": round(tot["wall_s"], 2),
                "objective_s": round(tot["objective_s"], 2), "pruned": tot["pruned"],
                "iterations_ratio": round(total["none"]["iterations"] / max(tot["iterations"], 1), 3),
                "wall_ratio": round(total["none"]["wall_s"] / max(tot["wall_s"], 1e-9), 3),
                "objective_ratio": round(total["none"]["objective_s"] / max(tot["objective_s"], 1e-9), 3),
                "best_mean": statistics.fmean(per_seed.values()),
                # seeds where pruning ended at least as well as the same search without it
                "best_kept": sum((per_seed[s] >= plain[s]) if setup.maximize else (per_seed[s] <= plain[s])
                                 for s in per_seed)}
    default = summary.get("tpe", summary[samplers[0]])["median"]  # forgeml tune's defaults: TPE + median
    return {"trials": trials, "samplers": samplers, "seeds": seeds, "runs": runs, "summary": summary,
            "target": PRUNE_TARGET, "met": default["iterations_ratio"] >= PRUNE_TARGET}


def machine() -> dict[str, Any]:
    import lightgbm
    import optuna
    import sklearn

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"date": date.today().isoformat(), "python": platform.python_version(), "cores": cores,
            "cpu": platform.processor() or platform.machine(), "gpu": None, "optuna": optuna.__version__,
            "lightgbm": lightgbm.__version__, "scikit-learn": sklearn.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="breast_cancer", choices=sorted(DATASETS))
    parser.add_argument("--seeds", type=int, default=9, help="seeds for TPE vs random (at least 5 for the claim)")
    parser.add_argument("--trials", type=int, default=100, help="trials per sampler for TPE vs random")
    parser.add_argument("--prune-seeds", type=int, default=5, help="seeds per sampler for the pruning comparison")
    parser.add_argument("--prune-trials", type=int, default=50)
    parser.add_argument("--prune-samplers", default="tpe,random")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds x 30 trials, 1 x 20 for pruning, "
                                                             "results to a temporary folder")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/search_efficiency.json")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.trials, args.prune_seeds, args.prune_trials = 2, 30, 1, 20
    for flag in ("seeds", "trials", "prune_seeds", "prune_trials"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1; got {getattr(args, flag)}")
    samplers = args.prune_samplers.split(",")
    if unknown := sorted(set(samplers) - {"tpe", "random"}):
        parser.error(f"unknown sampler {', '.join(unknown)} for --prune-samplers (known: tpe, random)")
    os.environ.setdefault("FORGEML_HOME", tempfile.mkdtemp(prefix="forgeml-search-"))  # nothing is written there
    out = args.out or (Path(tempfile.mkdtemp(prefix="search-efficiency-")) if args.quick else HERE / "results") \
        / "search_efficiency.json"

    setup = make_setup(args.dataset)
    print(f"{args.dataset}: {len(setup.data.X)} rows, {FOLDS}-fold CV, {setup.problem.metric.name}, "
          f"LightGBM {BASE}, space {sorted(setup.space)}", flush=True)
    started = time.perf_counter()
    claim1 = tpe_vs_random(setup, list(range(args.seeds)), args.trials)
    claim2 = pruning(setup, samplers, list(range(args.prune_seeds)), args.prune_trials)
    result = {
        "machine": machine(), "quick": args.quick, "wall_s": round(time.perf_counter() - started, 1),
        "setup": {"dataset": args.dataset, "rows": len(setup.data.X), "task": setup.problem.task,
                  "metric": setup.problem.metric.name, "folds": FOLDS, "family": "lightgbm", "fixed": BASE,
                  "space": {n: repr(d.dist) for n, d in setup.space.items()}, "report_every": setup.report_every},
        "tpe_vs_random": claim1, "pruning": claim2,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))

    print(f"\nTPE vs random: trials to reach random's best-of-{args.trials} per seed {claim1['trials_to_reach']}, "
          f"median {claim1['median_trials_to_reach'] or 'not reached'} (target <= {REACH_TARGET}: "
          f"{'met' if claim1['met'] else 'not met'})")
    for sampler, rows in claim2["summary"].items():
        for p in ("median", "hyperband"):
            r = rows[p]
            print(f"{sampler} + {p}: {r['iterations_ratio']:.2f}x fewer iterations, {r['wall_ratio']:.2f}x less wall "
                  f"time ({r['objective_ratio']:.2f}x inside the objective), best {r['best_mean']:.5f} vs {rows['none']['best_mean']:.5f} without pruning")
    print(f"pruning target >= {PRUNE_TARGET}x (TPE + median, forgeml tune's default): "
          f"{'met' if claim2['met'] else 'not met'}\nwrote {out}")


if __name__ == "__main__":
    main()
