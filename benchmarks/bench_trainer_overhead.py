"""Samples per second of forgeml's Trainer against hand-written PyTorch loops doing the same work.

Same MLP (50 -> 128 -> 64 -> 1, the shape of forgeml's default mlp), same rows, batch size, epochs
and optimiser (AdamW, lr 1e-3, weight decay 1e-4); no validation and no early stopping on either
side. Two baselines:
  hand_gather      the tightest loop one would write: a seeded permutation per epoch, each batch
                   gathered with one index_select (what the Trainer does for tensor datasets)
  hand_dataloader  the textbook loop: DataLoader(TensorDataset, shuffle=True), rows collated one by one
Contenders run interleaved, `--repeats` rounds in rotating order; the claim is on medians,
ratio = trainer / hand_gather samples/s >= 0.95 (the ratio of the fastest runs, less sensitive to
other load on the machine, is reported beside it). Writes benchmarks/results/trainer_overhead.json.

    python benchmarks/bench_trainer_overhead.py [--rows 100000] [--epochs 2] [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

FEATURES, BATCH, LR, WEIGHT_DECAY = 50, 128, 1e-3, 1e-4


def make_mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
    )


def step(module: torch.nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor) -> None:
    loss = F.mse_loss(module(xb).squeeze(1), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def hand_gather(X: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    module = make_mlp(seed)
    optimizer = torch.optim.AdamW(module.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), BATCH):
            rows = order[i : i + BATCH]
            step(module, optimizer, X.index_select(0, rows), y.index_select(0, rows))


def hand_dataloader(X: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    module = make_mlp(seed)
    optimizer = torch.optim.AdamW(module.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    loader = DataLoader(TensorDataset(X, y), batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(seed))
    for _ in range(epochs):
        for xb, yb in loader:
            step(module, optimizer, xb, yb)


def trainer(X: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    from forgeml.spec import NeuralSpec
    from forgeml.training.trainer import Trainer

    config = NeuralSpec(epochs=epochs, batch_size=BATCH, optimizer="adamw", learning_rate=LR, weight_decay=WEIGHT_DECAY,
                        early_stopping=None, device="cpu", mixed_precision="off")
    Trainer(make_mlp(seed), config, task="regression", seed=seed).fit(TensorDataset(X, y))


CONTENDERS = {"trainer": trainer, "hand_gather": hand_gather, "hand_dataloader": hand_dataloader}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steadiest on a shared machine)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "trainer_overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(args.rows, FEATURES, generator=g)
    y = X[:, :5].sum(1) + 0.1 * torch.randn(args.rows, generator=g)

    trainer(X[:1024], y[:1024], 1, 0)  # warm-up: imports, allocator, kernels
    hand_gather(X[:1024], y[:1024], 1, 0)
    seconds: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    names = list(CONTENDERS)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
            start = time.perf_counter()
            CONTENDERS[name](X, y, args.epochs, r)
            seconds[name].append(time.perf_counter() - start)

    samples = args.rows * args.epochs
    batches = math.ceil(args.rows / BATCH) * args.epochs
    rates = {name: samples / statistics.median(times) for name, times in seconds.items()}
    fastest = {name: samples / min(times) for name, times in seconds.items()}
    result = {
        "claim": "forgeml Trainer samples/s >= 0.95 x a hand-written loop doing the same work",
        "rows": args.rows, "features": FEATURES, "batch_size": BATCH, "epochs": args.epochs, "repeats": args.repeats,
        "threads": args.threads, "model": "MLP 50-128-64-1, AdamW", "samples_per_s": rates,
        "seconds": seconds,
        "ratio": rates["trainer"] / rates["hand_gather"],
        "ratio_of_fastest_runs": fastest["trainer"] / fastest["hand_gather"],
        "overhead_us_per_batch": (statistics.median(seconds["trainer"]) - statistics.median(seconds["hand_gather"]))
        / batches * 1e6,
        "ratio_vs_dataloader_loop": rates["trainer"] / rates["hand_dataloader"],
        "target": 0.95,
        "meets_target": rates["trainer"] / rates["hand_gather"] >= 0.95,
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shown = ("samples_per_s", "ratio", "ratio_of_fastest_runs", "overhead_us_per_batch", "ratio_vs_dataloader_loop",
             "meets_target")
    print(json.dumps({k: result[k] for k in shown}, indent=2))


if __name__ == "__main__":
    main()
