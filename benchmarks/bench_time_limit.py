"""Is `--time-limit` honoured (target: wall time within +10 % of the limit) when the budget binds?

The bundled datasets finish far below a 30 s limit, so this uses generated tables large enough
that not every family fits in the budget: 200,000 rows of mixed numeric / categorical / missing
data for classification and regression. Measures `forgeml.train` wall time (reading the frame,
profiling, fitting, evaluation, registration and report all included) against each limit, and
which families were fitted or skipped. Writes benchmarks/results/time_limit.json.

    python benchmarks/bench_time_limit.py [--rows 200000] [--limits 20,60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--limits", default="20,60")
    args = parser.parse_args()
    os.environ.setdefault("FORGEML_HOME", tempfile.mkdtemp(prefix="forgeml-limit-"))
    import forgeml
    from tables import make_churn, make_prices

    tables = {"classification": (make_churn(args.rows, seed=0).drop(columns=["notes"]), "churn"),
              "regression": (make_prices(args.rows, seed=0), "price")}
    rows = []
    for limit in [float(x) for x in args.limits.split(",")]:
        for task, (df, target) in tables.items():
            start = time.perf_counter()
            result = forgeml.train(df, target=target, time_limit=limit, name=f"limit-{task}")
            wall = time.perf_counter() - start
            board = result.leaderboard
            rows.append({"task": task, "rows": len(df), "limit_s": limit, "wall_s": round(wall, 2),
                         "wall_over_limit": round(wall / limit, 3), "within_10pct": wall <= 1.1 * limit,
                         "fitted": board.loc[board["status"] == "ok", "family"].tolist(),
                         "not_fitted": board.loc[board["status"] != "ok", "family"].tolist(),
                         "winner": result.model.family, "metric": result.metric,
                         "test_score": result.metrics[result.metric]})
            r = rows[-1]
            print(f"{task:<15} limit {limit:>5.0f}s  wall {wall:6.1f}s  ratio {r['wall_over_limit']:.2f}  "
                  f"fitted {len(r['fitted'])}/{len(board)}  winner {r['winner']}")
    out = Path(__file__).parent / "results" / "time_limit.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
                               "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
