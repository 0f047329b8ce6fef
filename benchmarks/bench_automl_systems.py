"""forgeml's AutoML against FLAML, AutoGluon-Tabular and a default HistGradientBoosting, same split, budget and cores.

For each of scikit-learn's bundled datasets (breast_cancer, iris, wine, digits, diabetes) and each
time budget, every system gets the same seeded 80/20 split (stratified for classification) and fits
once in a fresh process of its own, pinned to the same `--cores` CPUs:
  forgeml    forgeml.train(time_limit=T, register=False, report off), forgeml's venv
  flaml      flaml.AutoML().fit(task, time_budget=T, n_jobs=cores), in benchmarks/.venvs/flaml
  autogluon  TabularPredictor.fit(presets="medium_quality", time_limit=T, num_cpus=cores), in
             benchmarks/.venvs/autogluon (with --best-quality also presets="best_quality" at the
             largest budget)
  hgb        HistGradientBoosting{Classifier,Regressor} with defaults (no budget), forgeml's venv
The two benchmark venvs are created on the first run (minutes) and reused after. Every AutoML system
optimises the same metric (log loss for classification, RMSE for regression); the worker
(automl_systems_worker.py) returns test predictions and this script scores them all with the same
code: log loss and accuracy, RMSE and R². Writes benchmarks/results/automl_systems.json and a plot of
each system's best validation loss against seconds since its fit started (automl_systems.png).

    python benchmarks/bench_automl_systems.py [--budgets 30,120] [--datasets iris,wine] [--best-quality] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine_info import cpu_model  # noqa: E402  (benchmarks/ is the script's folder)

HERE = Path(__file__).resolve().parent
WORKER = HERE / "automl_systems_worker.py"
DATASETS = ["breast_cancer", "iris", "wine", "digits", "diabetes"]
SYSTEMS = ["forgeml", "flaml", "autogluon", "hgb"]
LABELS = {"forgeml": "forgeml", "flaml": "FLAML", "autogluon": "AutoGluon", "autogluon_best": "AutoGluon best_quality",
          "hgb": "HGB"}
# Benchmark venvs: what is installed (under the repository's constraints, which keep torch the CPU
# wheel) and the import that proves it works. AutoGluon's base install has no gradient boosting, so
# the extras of the models its medium_quality preset fits are named; [all] (Ray, TabPFN, ...) is not.
VENVS = {"flaml": (["flaml[automl]", "pyarrow"], "import flaml, lightgbm, xgboost, pyarrow"),
         "autogluon": (["autogluon.tabular[lightgbm,catboost,xgboost,fastai]"],
                       "import autogluon.tabular, lightgbm, catboost, xgboost, fastai, torch")}
METRICS = {"classification": {"forgeml": "log_loss", "flaml": "log_loss", "autogluon": "log_loss"},
           "regression": {"forgeml": "rmse", "flaml": "rmse", "autogluon": "root_mean_squared_error"}}
PRIMARY = {"classification": "log_loss", "regression": "rmse"}  # lower is better; what every system optimises
SECONDARY = {"classification": "accuracy", "regression": "r2"}  # higher is better


def venv_python(name: str) -> tuple[str | None, str]:
    """(python of benchmarks/.venvs/NAME where its system imports, how it was had) or (None, why not)."""
    venv = HERE / ".venvs" / name
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    packages, probe = VENVS[name]
    if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True, check=False).returncode == 0:
        return str(python), "reused"
    print(f"installing {' '.join(packages)} into {venv} (once; takes minutes)", file=sys.stderr)
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "-q", "-c", str(HERE.parent / "constraints.txt"), *packages],
             [str(python), "-c", probe]]
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            lines = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()
            return None, f"`{' '.join(command[1:4])}` failed: {lines[-1].strip()}"
    return str(python), "created"


def load(name: str, seed: int) -> dict:
    """A bundled dataset (forgeml's reader, as in bench_automl_vs_hgb) split 80/20, stratified for classification."""
    from sklearn.model_selection import train_test_split

    from forgeml.data.io import read_table
    from forgeml.data.target import check_training_data

    df = read_table(f"sklearn://{name}")
    task = check_training_data(df, "target", "auto")
    train, test = train_test_split(df, test_size=0.2, random_state=seed,
                                   stratify=df["target"] if task == "classification" else None)
    classes = sorted(df["target"].unique().tolist()) if task == "classification" else None
    return {"name": name, "task": task, "train": train, "test": test, "classes": classes,
            "rows": len(df), "features": df.shape[1] - 1}


def run_system(system: str, python: str, data: dict, budget: float, seed: int, cpus: list[int],
               preset: str = "medium_quality", pythonpath: str | None = None) -> dict:
    """Fit one system in a fresh process (on the parent's CPUs: `cpus`); its worker's result.json, or {"error": why}."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{system}-") as tmp:
        job_dir = Path(tmp)
        data["train"].to_parquet(job_dir / "train.parquet")
        data["test"].to_parquet(job_dir / "test.parquet")
        job = {"system": system, "task": data["task"], "target": "target", "budget": budget, "seed": seed,
               "cores": len(cpus), "metric": METRICS[data["task"]], "classes": data["classes"], "preset": preset}
        (job_dir / "job.json").write_text(json.dumps(job))
        env = {k: v for k, v in os.environ.items() if k != "FORGEML_TORCH_THREADS"}  # each library's own default
        env.update({v: str(len(cpus)) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
        env.update({"FORGEML_HOME": str(job_dir / "forgeml-home"), "MPLBACKEND": "Agg", "PYTHONHASHSEED": str(seed)})
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        limit = 3 * budget + 180  # a hung system is stopped, not waited on
        start = time.perf_counter()
        with open(job_dir / "log.txt", "w") as log:
            process = subprocess.Popen([python, str(WORKER), str(job_dir)], stdout=log, stderr=subprocess.STDOUT,
                                       env=env, cwd=job_dir, start_new_session=True)
            try:
                process.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the worker's own session: it and its children only
                process.wait()
                return {"error": f"no result after {limit:.0f} s (killed)"}
            except BaseException:  # interrupted: a worker in its own session would outlive the benchmark
                os.killpg(process.pid, signal.SIGKILL)
                raise
        wall = time.perf_counter() - start
        result_file = job_dir / "result.json"
        if process.returncode or not result_file.exists():
            lines = (job_dir / "log.txt").read_text().strip().splitlines() or [f"exit status {process.returncode}"]
            return {"error": lines[-1].strip()[:300]}
        return {**json.loads(result_file.read_text()), "wall_s": wall}


def score(data: dict, result: dict) -> dict[str, float]:
    """The same metric code for every system: log loss and accuracy, or RMSE and R², on the test split."""
    from sklearn.metrics import accuracy_score, log_loss, r2_score, root_mean_squared_error

    y = data["test"]["target"].to_numpy()
    if data["task"] == "regression":
        pred = np.asarray(result["pred"], dtype=float)
        return {"rmse": float(root_mean_squared_error(y, pred)), "r2": float(r2_score(y, pred))}
    proba = np.clip(np.asarray(result["proba"], dtype=float), 0.0, None)
    proba /= proba.sum(axis=1, keepdims=True)  # a few systems' rows sum to 1 only within float error
    pred = np.asarray(result["pred"]).astype(y.dtype)
    return {"log_loss": float(log_loss(y, proba, labels=data["classes"])), "accuracy": float(accuracy_score(y, pred))}


def row_for(data: dict, system: str, budget: float, result: dict) -> dict:
    row = {"dataset": data["name"], "task": data["task"], "rows": data["rows"], "features": data["features"],
           "budget_s": budget, "system": system}
    if "error" in result:
        print(f"  {LABELS[system]} failed on {data['name']} at {budget:g} s: {result['error']}", file=sys.stderr)
        return {**row, "error": result["error"]}
    fit = result["fit_s"]
    budgeted = system != "hgb"
    return {**row, **score(data, result), "fit_s": fit, "process_wall_s": result["wall_s"], "import_s": result["import_s"],
            "over_budget_s": fit - budget if budgeted else None, "fit_over_budget": fit / budget if budgeted else None,
            **result["latency"], "winner": str(result.get("winner")),
            **{k: result[k] for k in ("models_fitted", "models_tried", "leaderboard") if k in result},
            "trajectory": result.get("trajectory"), "versions": result["versions"]}


def compare(rows: list[dict], budgets: list[float], datasets: list[str]) -> dict:
    """Per budget: on how many datasets forgeml is at least as good as each other system, and the claims."""
    summary = {}
    for budget in budgets:
        at = {(r["dataset"], r["system"]): r for r in rows if r["budget_s"] == budget and "error" not in r}
        entry = {}
        for other in sorted({s for _, s in at} - {"forgeml"}):
            wins, wins2, both = [], [], []
            for name in datasets:
                ours, theirs = at.get((name, "forgeml")), at.get((name, other))
                if ours is None or theirs is None:
                    continue
                both.append(name)
                if ours[PRIMARY[ours["task"]]] <= theirs[PRIMARY[ours["task"]]]:
                    wins.append(name)
                if ours[SECONDARY[ours["task"]]] >= theirs[SECONDARY[ours["task"]]]:
                    wins2.append(name)
            entry[f"forgeml_vs_{other}"] = {"at_least_as_good": len(wins), "datasets": len(both), "which": wins,
                                            "at_least_as_good_on_accuracy_or_r2": len(wins2)}
        claims = {}
        if "forgeml_vs_flaml" in entry:
            e = entry["forgeml_vs_flaml"]
            claims["forgeml >= FLAML on most datasets"] = e["at_least_as_good"] > e["datasets"] / 2
        if "forgeml_vs_autogluon" in entry:
            e = entry["forgeml_vs_autogluon"]
            claims["forgeml >= AutoGluon on at least half"] = e["at_least_as_good"] >= math.ceil(e["datasets"] / 2)
        summary[f"{budget:g}"] = {**entry, "claims": claims}
    return summary


def plot(rows: list[dict], budgets: list[float], datasets: list[str], out: Path) -> Path | None:
    """Best validation loss so far against seconds since the fit started: one panel per dataset and budget."""
    try:
        import matplotlib
    except ImportError:
        print("no plot: matplotlib is not installed", file=sys.stderr)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traced = [r for r in rows if r.get("trajectory")]
    if not traced:
        return None
    fig, axes = plt.subplots(len(budgets), len(datasets), figsize=(3.6 * len(datasets), 3.0 * len(budgets)),
                             squeeze=False)
    colours = {"forgeml": "#1f77b4", "flaml": "#ff7f0e", "autogluon": "#2ca02c", "autogluon_best": "#98df8a"}
    for i, budget in enumerate(budgets):
        for j, name in enumerate(datasets):
            ax = axes[i][j]
            for r in traced:
                if r["budget_s"] == budget and r["dataset"] == name:
                    t, loss = zip(*r["trajectory"], strict=True)
                    ax.step(t, loss, where="post", marker=".", label=LABELS[r["system"]], color=colours.get(r["system"]))
            ax.axvline(budget, color="grey", linestyle="--", linewidth=0.8)
            task = next((r["task"] for r in rows if r["dataset"] == name), "classification")
            ax.set_yscale("log" if task == "classification" else "linear")
            ax.set_title(f"{name}, {budget:g} s", fontsize=10)
            ax.set_xlabel("seconds since fit started", fontsize=8)
            ax.set_ylabel(f"best validation {PRIMARY[task]}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=7)
    fig.suptitle("Best validation loss so far against seconds since the fit started\n(each system validates its own "
                 "way: compare the shapes, not the levels)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def forgeml_source(src: Path = HERE.parent / "src" / "forgeml") -> dict:
    """The commit and a hash of forgeml's source files."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(src.rglob("*.py")):
        digest.update(path.relative_to(src).as_posix().encode() + b"\0" + path.read_bytes())
    commit = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return {"commit": commit or None, "source_sha256": digest.hexdigest()[:16]}


def machine(cpus: list[int]) -> dict:
    """What the numbers were measured on, including how busy it was."""
    gpu = shutil.which("nvidia-smi") is not None
    return {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "cores_used": len(cpus), "gpu": gpu,
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def print_table(rows: list[dict], budget: float) -> None:
    print(f"\nbudget {budget:g} s")
    print(f"{'dataset':<14}{'system':<24}{'loss':>9}{'acc/R²':>8}{'fit s':>8}{'fit/T':>7}{'1-row ms':>10}"
          f"{'batch ms/row':>14}  winner")
    for r in rows:
        if r["budget_s"] != budget:
            continue
        if "error" in r:
            print(f"{r['dataset']:<14}{LABELS[r['system']]:<24}  failed: {r['error']}")
            continue
        ratio = f"{r['fit_over_budget']:.2f}" if r["fit_over_budget"] is not None else "-"
        print(f"{r['dataset']:<14}{LABELS[r['system']]:<24}{r[PRIMARY[r['task']]]:>9.4f}{r[SECONDARY[r['task']]]:>8.3f}"
              f"{r['fit_s']:>8.1f}{ratio:>7}{r['single_row_ms']:>10.2f}{r['batch_ms_per_row']:>14.3f}  {r['winner']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="30,120", help="seconds, comma-separated")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--cores", type=int, default=2, help="CPUs every system is pinned to")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--best-quality", action="store_true",
                        help="also AutoGluon with presets='best_quality' at the largest budget")
    parser.add_argument("--quick", action="store_true", help="smoke run: iris at 10 s, results to a temporary folder")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/automl_systems.json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # stop the running worker too
    if args.quick:
        args.budgets, args.datasets = "10", "iris"
    out = args.out or (Path(tempfile.mkdtemp(prefix="automl-systems-")) if args.quick else HERE / "results") / "automl_systems.json"
    budgets = [float(b) for b in args.budgets.split(",")]
    datasets, systems = args.datasets.split(","), args.systems.split(",")
    unknown = sorted(set(datasets) - set(DATASETS)) + sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown {', '.join(unknown)} (datasets: {', '.join(DATASETS)}; systems: {', '.join(SYSTEMS)})")
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cpus = available[: args.cores]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)  # every worker inherits the same CPUs

    pythons, setup = {"forgeml": sys.executable, "hgb": sys.executable}, {}
    for name in ("flaml", "autogluon"):
        if name in systems:
            python, how = venv_python(name)
            setup[name] = {"venv": f"benchmarks/.venvs/{name}", "installed": VENVS[name][0], "venv_was": how}
            if python is None:
                print(f"{LABELS[name]} left out: {how}", file=sys.stderr)
                systems.remove(name)
            else:
                pythons[name] = python
    plan = [(budget, name, system, "medium_quality") for budget in budgets for name in datasets for system in systems]
    if args.best_quality and "autogluon" in systems:
        plan += [(max(budgets), name, "autogluon_best", "best_quality") for name in datasets]

    rows, loaded = [], {name: load(name, args.seed) for name in datasets}
    # forgeml's workers import a copy of its source taken now, so edits to the tree during a long run
    # (other work going on in the checkout) cannot mix versions within one result file
    with tempfile.TemporaryDirectory(prefix="forgeml-src-") as snapshot:
        shutil.copytree(HERE.parent / "src" / "forgeml", Path(snapshot) / "forgeml",
                        ignore=shutil.ignore_patterns("__pycache__"))
        started, source = machine(cpus), forgeml_source(Path(snapshot) / "forgeml")
        for budget, name, system, preset in plan:
            print(f"{name} · {LABELS[system]} · {budget:g} s", file=sys.stderr)
            worker = "autogluon" if system == "autogluon_best" else system
            result = run_system(worker, pythons[worker], loaded[name], budget, args.seed, cpus, preset,
                                snapshot if worker == "forgeml" else None)
            rows.append(row_for(loaded[name], system, budget, result))
    for r in rows:  # versions once per system, not per row
        if versions := r.pop("versions", None):
            setup.setdefault(r["system"], {})["versions"] = versions
    for budget in budgets:
        print_table(rows, budget)
    summary = compare(rows, budgets, datasets)
    print(json.dumps({b: s["claims"] for b, s in summary.items()}, indent=2))
    figure = plot(rows, budgets, datasets, out.with_suffix(".png"))
    result = {
        "claim": "forgeml >= FLAML on most datasets and >= AutoGluon-Tabular on at least half, same split, budget, cores",
        "method": {"split": f"train_test_split 80/20, random_state={args.seed}, stratified for classification",
                   "optimised_metric": METRICS, "scored_with": {"classification": ["log_loss", "accuracy"],
                                                               "regression": ["rmse", "r2"]},
                   "primary_metric": PRIMARY, "cores": len(cpus), "seed": args.seed, "runs": 1,
                   "fit_s": "wall time of the system's fit call (forgeml: all of forgeml.train)",
                   "latency": "predict_proba (classification) or predict (regression): median of single-row calls "
                              "and one call on the whole test set, per row"},
        "machine": {**started, "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "forgeml_source": source, "systems": setup, "budgets": budgets, "results": rows, "summary": summary,
        "plot": os.path.relpath(figure, out.parent) if figure else None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}" + (f" and {figure}" if figure else ""))


if __name__ == "__main__":
    main()
