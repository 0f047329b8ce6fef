"""Peak memory of training an MLP straight from Parquet (fit_parquet) on 2,000,000 x 50 float32 rows (~400 MB).

The claim: what streaming adds to the process does not grow with the data, because a stream holds
one row group's decoded columns, a record batch and a bounded shuffle buffer, never the table:
  * peak RSS - RSS after imports <= 0.5 x the data's in-memory size (features and target as float32);
  * from a quarter of the rows to all of them, that addition grows by <= 5% of the extra data.
The named baseline is the in-memory path on the same file: pandas.read_parquet, then
NeuralRegressor.fit, which must hold the table (and its float64 encoding) at once. A second stream
over a file of a quarter of the rows shows that what streaming adds does not grow with the data.
Each side runs in its own child process, trains one epoch (batch 512, no early stopping, CPU),
predicts a few rows and reports resource.getrusage's peak RSS and the RSS after imports.
Writes benchmarks/results/streaming_memory.json.

    python benchmarks/bench_streaming_memory.py [--rows 2000000] [--row-group 65536] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = 50
WRITE_ROWS = 250_000  # rows generated per write: the benchmark's own memory stays small too


from bench_trainer_memory import peak_mb, rss_mb  # noqa: E402  (benchmarks/ is the script's folder)


def write_parquet(path: Path, rows: int, row_group: int) -> None:
    """rows x FEATURES standard normal float32 features f0.. and target = sum of the first five + noise."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    names = [f"f{j}" for j in range(FEATURES)]
    schema = pa.schema([*(pa.field(n, pa.float32()) for n in names), pa.field("target", pa.float32())])
    with pq.ParquetWriter(str(path), schema) as writer:
        for start in range(0, rows, WRITE_ROWS):
            n = min(WRITE_ROWS, rows - start)
            X = rng.standard_normal((n, FEATURES), dtype=np.float32)
            y = X[:, :5].sum(axis=1) + 0.1 * rng.standard_normal(n, dtype=np.float32)
            table = pa.Table.from_arrays([*(pa.array(X[:, j]) for j in range(FEATURES)), pa.array(y)], schema=schema)
            writer.write_table(table, row_group_size=row_group)


def child(kind: str, path: str, batch_size: int) -> dict:
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    import torch

    from forgeml.models.neural import NeuralRegressor
    from forgeml.training import streaming  # noqa: F401

    # torch imports its compiler stack (torch._dynamo, ~65 MB of RSS) on the first optimiser it builds:
    # an import whatever the data, so it belongs to the baseline, like torch's own ~220 MB.
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    after_imports = rss_mb()
    model = NeuralRegressor(epochs=1, batch_size=batch_size, early_stopping=False, device="cpu", random_state=0)
    start = time.perf_counter()
    if kind == "stream":
        model.fit_parquet(path, "target")
    else:
        df = pd.read_parquet(path)
        model.fit(df.drop(columns="target"), df["target"])
        del df
    seconds = time.perf_counter() - start
    sample = pq.ParquetFile(path).read_row_group(0).to_pandas().head(1000)
    r2 = model.score(sample.drop(columns="target"), sample["target"])
    peak = peak_mb()
    return {"rss_after_imports_mb": after_imports, "peak_rss_mb": peak, "training_adds_mb": peak - after_imports,
            "seconds": seconds, "rows_per_second": None, "r2_on_1000_rows": float(r2),
            "final_train_loss": float(model.history_[-1]["train_loss"]), "finite": bool(np.isfinite(r2))}


def run_child(kind: str, path: Path, args: argparse.Namespace, rows: int | None = None) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--path", str(path), "--batch-size", str(args.batch_size)]
    env = {**os.environ, "FORGEML_TORCH_THREADS": str(args.threads)}
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["rows_per_second"] = (rows or args.rows) / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--row-group", type=int, default=65536)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true", help="skip the in-memory fit")
    parser.add_argument("--child", choices=["stream", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "streaming_memory.json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.path, args.batch_size)))
        return
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="forgeml-bench-stream-") as folder:
        path = Path(folder) / "data.parquet"
        start = time.perf_counter()
        write_parquet(path, args.rows, args.row_group)
        write_seconds = time.perf_counter() - start
        meta = pq.ParquetFile(str(path)).metadata
        file_mb = path.stat().st_size / 2**20
        data_mb = args.rows * (FEATURES + 1) * 4 / 2**20  # float32 features and target
        ours = run_child("stream", path, args)
        baseline = None if args.no_baseline else run_child("memory", path, args)
        quarter = Path(folder) / "quarter.parquet"
        path.unlink()
        write_parquet(quarter, args.rows // 4, args.row_group)
        small = run_child("stream", quarter, args, rows=args.rows // 4)
    ratio = ours["training_adds_mb"] / data_mb
    growth = (ours["training_adds_mb"] - small["training_adds_mb"]) / (data_mb - data_mb / 4)
    result = {
        "claim": "fit_parquet: peak RSS - RSS after imports <= 0.5 x the data's in-memory size, and it grows by "
                 "<= 5% of the extra data from a quarter of the rows to all of them",
        "rows": args.rows, "features": FEATURES, "row_groups": meta.num_row_groups, "rows_per_group": args.row_group,
        "file_mb": file_mb, "data_mb": data_mb, "write_seconds": write_seconds, "epochs": 1,
        "batch_size": args.batch_size, "threads": args.threads, "stream": ours, "in_memory": baseline,
        "stream_quarter_rows": small,
        "peak_minus_imports_mb": ours["training_adds_mb"], "ratio_to_data": ratio, "target": 0.5,
        "growth_per_extra_data": growth, "growth_target": 0.05, "meets_target": ratio <= 0.5 and growth <= 0.05,
        "in_memory_ratio_to_data": None if baseline is None else baseline["training_adds_mb"] / data_mb,
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
