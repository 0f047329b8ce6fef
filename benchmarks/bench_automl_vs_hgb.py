"""forgeml train --time-limit T versus a hand-written HistGradientBoosting baseline, same split.

For each of scikit-learn's bundled datasets: split with forgeml's own splitter (the split
`forgeml train` uses), fit HistGradientBoosting with defaults on train + validation (what a
user writing it by hand would do), and run `forgeml.train` with the time limit. Reports each
side's test score on the metric forgeml optimises and on accuracy / R², the ratio, and forgeml's
wall time against the limit. Writes benchmarks/results/automl_vs_hgb.json.

    python benchmarks/bench_automl_vs_hgb.py [--time-limit 30] [--datasets iris,wine]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATASETS = ["iris", "wine", "breast_cancer", "digits", "diabetes"]


def baseline(parts, target: str, task: str, classes, seed: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from forgeml.evaluation.metrics import evaluate_predictions

    train = pd.concat([parts.train, parts.validation])
    X, y = train.drop(columns=[target]), train[target]
    Xt, yt = parts.test.drop(columns=[target]), parts.test[target]
    start = time.perf_counter()
    if task == "classification":
        model = HistGradientBoostingClassifier(random_state=seed).fit(X, y)
        proba = model.predict_proba(Xt)
        order = [list(model.classes_).index(c) for c in classes]
        proba = proba[:, order]
        pred = np.asarray(classes)[proba.argmax(axis=1)]
    else:
        model = HistGradientBoostingRegressor(random_state=seed).fit(X, y)
        pred, proba = model.predict(Xt), None
    seconds = time.perf_counter() - start
    metrics = evaluate_predictions(task, np.asarray(yt), pred, proba, classes)["metrics"]
    return {"metrics": metrics, "seconds": seconds}


def run(name: str, time_limit: float, seed: int) -> dict:
    import forgeml
    from forgeml.data.io import read_table
    from forgeml.data.split import split_frame
    from forgeml.data.target import check_training_data
    from forgeml.spec import build_spec

    df = read_table(f"sklearn://{name}")
    spec = build_spec(target="target", seed=seed)
    task = check_training_data(df, "target", "auto")
    parts = split_frame(df, "target", spec.split, task, spec.split_seed)
    classes = sorted(df["target"].unique().tolist()) if task == "classification" else None
    base = baseline(parts, "target", task, classes, seed)

    start = time.perf_counter()
    result = forgeml.train(df, target="target", time_limit=time_limit, name=f"bench-{name}", seed=seed)
    wall = time.perf_counter() - start
    ours = result.metrics
    metric = result.metric
    greater = metric not in ("log_loss", "rmse", "mse", "mae", "mape", "median_ae")
    secondary = "accuracy" if task == "classification" else "r2"
    ratio = ours[metric] / base["metrics"][metric] if greater else base["metrics"][metric] / ours[metric]
    return {
        "dataset": name, "task": task, "rows": len(df), "metric": metric,
        "forgeml": ours[metric], "baseline": base["metrics"][metric], "ratio": ratio,
        f"forgeml_{secondary}": ours[secondary], f"baseline_{secondary}": base["metrics"][secondary],
        "winner_family": result.model.family, "wall_s": wall, "time_limit_s": time_limit,
        "wall_over_limit": wall / time_limit, "at_least_baseline": ratio >= 1.0 - 1e-9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "automl_vs_hgb.json"))
    args = parser.parse_args()
    os.environ.setdefault("FORGEML_HOME", tempfile.mkdtemp(prefix="forgeml-bench-"))
    rows = [run(name, args.time_limit, args.seed) for name in args.datasets.split(",")]
    header = f"{'dataset':<14}{'metric':<10}{'forgeml':>10}{'HGB':>10}{'ratio':>8}{'wall/limit':>12}  winner"
    print(header)
    for r in rows:
        print(f"{r['dataset']:<14}{r['metric']:<10}{r['forgeml']:>10.4f}{r['baseline']:>10.4f}{r['ratio']:>8.3f}"
              f"{r['wall_over_limit']:>12.2f}  {r['winner_family']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    Path(args.out).write_text(json.dumps({"machine": machine, "time_limit": args.time_limit, "results": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
