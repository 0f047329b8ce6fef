"""Peak memory of training an MLP on 1,000,000 x 50 float32 rows (200 MB) with forgeml's Trainer.

The claim: what the data and the training add to the process stays within 2x the data's size, i.e.
peak RSS - RSS after imports <= 2 x data (torch alone takes ~220 MB of RSS on import, so the
absolute peak cannot be). No copy of the data is made: a TensorDataset over torch.from_numpy
shares numpy's buffer, batches are gathered one at a time, nothing is copied per epoch.
Each side runs in its own child process: forgeml's Trainer, and for reference a hand-written loop
(same MLP, AdamW, batch gathering, prediction in chunks). Each child creates the data, trains for
--epochs, predicts every row and reports resource.getrusage's peak RSS with the RSS after imports
and after creating the data. Writes benchmarks/results/trainer_memory.json.

    python benchmarks/bench_trainer_memory.py [--rows 1000000] [--epochs 1] [--batch-size 512]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

FEATURES = 50


def rss_mb() -> float:
    """Current resident set size (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_mb()


def peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS, KiB on Linux


def hand_loop(module, X, y, epochs: int, batch_size: int):
    """The reference: the tightest hand-written loop and a chunked prediction.  # -> (N, 1)"""
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), batch_size):
            rows = order[i : i + batch_size]
            loss = F.mse_loss(module(X[rows]).squeeze(1), y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return torch.cat([module(X[i : i + 4096]) for i in range(0, len(X), 4096)])


def child(kind: str, rows: int, epochs: int, batch_size: int) -> dict:
    import numpy as np
    import torch
    from torch.utils.data import TensorDataset

    from forgeml.spec import NeuralSpec
    from forgeml.training.trainer import Trainer

    after_imports = rss_mb()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, FEATURES), dtype=np.float32)  # no float64 intermediate
    y = X[:, :5].sum(axis=1)
    data = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    after_data = rss_mb()
    data_mb = (X.nbytes + y.nbytes) / 2**20

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(FEATURES, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64),
                                 torch.nn.ReLU(), torch.nn.Linear(64, 1))
    config = NeuralSpec(epochs=epochs, batch_size=batch_size, early_stopping=None, device="cpu")
    start = time.perf_counter()
    if kind == "trainer":
        trainer = Trainer(module, config, task="regression")
        trainer.fit(data)
        predictions = trainer.predict(data, batch_size=4096)
    else:
        predictions = hand_loop(module, *data.tensors, epochs, batch_size)
    seconds = time.perf_counter() - start
    peak = peak_mb()
    return {
        "data_mb": data_mb, "rss_after_imports_mb": after_imports, "rss_after_data_mb": after_data,
        "peak_rss_mb": peak, "training_adds_mb": peak - after_data, "predictions": list(predictions.shape),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", choices=["trainer", "hand"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "trainer_memory.json")
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(child(args.child, args.rows, args.epochs, args.batch_size)))
        return
    runs = {}
    for kind in ("trainer", "hand"):
        command = [sys.executable, __file__, "--child", kind, "--rows", str(args.rows), "--epochs", str(args.epochs),
                   "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        runs[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    ours = runs["trainer"]
    added = ours["peak_rss_mb"] - ours["rss_after_imports_mb"]
    import torch

    result = {
        "claim": "peak RSS - RSS after imports <= 2 x the data's size (training and predicting add no copy of it)",
        "rows": args.rows, "features": FEATURES, "data_mb": ours["data_mb"], "epochs": args.epochs,
        "batch_size": args.batch_size, "trainer": ours, "hand_loop": runs["hand"],
        "peak_minus_imports_mb": added, "ratio_to_data": added / ours["data_mb"], "target": 2.0,
        "meets_target": added <= 2.0 * ours["data_mb"],
        "trainer_minus_hand_peak_mb": ours["peak_rss_mb"] - runs["hand"]["peak_rss_mb"],
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
