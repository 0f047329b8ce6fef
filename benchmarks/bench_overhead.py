"""Fixed overhead of a whole forgeml run on a tiny table, beyond model fitting.

Baseline: the same logistic regression, fitted and scored by hand with scikit-learn on the same
rows. forgeml side: `forgeml.train(..., models="linear")`: reading, profiling, splitting, CV,
refit, evaluation, importance, MLflow run, packaging, registration and the HTML report. The
overhead is forgeml's wall time minus its own measured fitting time (CV fits + refit). Runs
in a fresh store (the first run pays MLflow's database creation; the second is the steady state
of a long-lived process), then as `forgeml train --json` in a fresh process on the existing store,
where process start and imports count as overhead too. Writes benchmarks/results/overhead.json. Target: at most 3 s beyond model fitting.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    os.environ["FORGEML_HOME"] = tempfile.mkdtemp(prefix="forgeml-overhead-")
    import forgeml
    from forgeml.data.io import read_table

    df = read_table("sklearn://iris")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    X, y = df.drop(columns=["target"]), df["target"]
    make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y).score(X, y)
    by_hand = time.perf_counter() - start

    runs = []
    for attempt in ("first run (creates the store)", "steady state"):
        start = time.perf_counter()
        result = forgeml.train(df, target="target", models="linear", time_limit=None, name="overhead")
        wall = time.perf_counter() - start
        fitting = result.fit_seconds
        runs.append({"run": attempt, "wall_s": wall, "fitting_s": fitting, "overhead_s": wall - fitting})
    csv = Path(os.environ["FORGEML_HOME"]) / "iris.csv"
    df.to_csv(csv, index=False)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "forgeml.cli", "train", str(csv), "--target", "target", "--models",
                           "linear", "--name", "overhead-cli", "--json"], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    fitting = json.loads(proc.stdout)["fit_seconds"]
    runs.append({"run": "CLI, fresh process, existing store", "wall_s": wall, "fitting_s": fitting,
                 "overhead_s": wall - fitting})
    print(f"hand-written scikit-learn fit+score: {by_hand:.3f}s")
    for r in runs:
        print(f"{r['run']:<36} wall {r['wall_s']:.2f}s  fitting {r['fitting_s']:.2f}s  overhead {r['overhead_s']:.2f}s")
    out = Path(__file__).parent / "results" / "overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
                               "by_hand_s": by_hand, "runs": runs, "target_overhead_s": 3.0}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
