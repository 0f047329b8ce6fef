"""Samples per second of forgeml's Trainer against hand-written PyTorch loops and PyTorch Lightning doing the same work.

Same MLP (50 -> 128 -> 64 -> 1, the shape of forgeml's default mlp), same rows, batch size, epochs,
optimiser (AdamW, lr 1e-3, weight decay 1e-4) and torch thread count; no validation and no early
stopping on any side. Three baselines:
  hand_gather      the tightest loop one would write: a seeded permutation per epoch, each batch
                   gathered with one index_select (what the Trainer does for tensor datasets)
  hand_dataloader  the textbook loop: DataLoader(TensorDataset, shuffle=True), rows collated one by one
  lightning        PyTorch Lightning's Trainer fed the hand_gather batches, its extras off (no logger,
                   checkpointing, progress bar, model summary or sanity check; no validation data)
Lightning never enters forgeml's virtualenv: it lives in benchmarks/.venvs/lightning (created on the
first run, reused after) and trains in a worker process of that venv, which imports this file for the
model and batches and builds the same data from the same seed (checked by checksum). Where it cannot
be installed, the result records "lightning": null with the reason and the other contenders still run.
Contenders run interleaved, `--repeats` rounds in rotating order; the claim is on medians,
ratio = trainer / hand_gather samples/s >= 0.95 (the ratio of the fastest runs, less sensitive to
other load on the machine, is reported beside it). Writes benchmarks/results/trainer_overhead.json.

    python benchmarks/bench_trainer_overhead.py [--rows 100000] [--epochs 2] [--repeats 7] [--threads 1] [--no-lightning]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from machine_info import cpu_model  # noqa: E402  (benchmarks/ is the script's folder)

FEATURES, BATCH, LR, WEIGHT_DECAY = 50, 128, 1e-3, 1e-4
HERE = Path(__file__).resolve().parent
LIGHTNING_VENV = HERE / ".venvs" / "lightning"
LIGHTNING_PACKAGES = ("torch==2.13.0", "pytorch-lightning")  # the constraints keep torch the CPU wheel
LIGHTNING_FLAGS = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
                   "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0}


def make_data(rows: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression rows, the same for every process that asks with the same seed.  # (rows, 50), (rows,)"""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(rows, FEATURES, generator=g)
    return X, X[:, :5].sum(1) + 0.1 * torch.randn(rows, generator=g)


def checksum(X: torch.Tensor, y: torch.Tensor) -> float:
    return float(X.double().sum() + y.double().sum())


def make_mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
    )


class GatherBatches:
    """Re-iterable (X, y) batches: a seeded permutation per pass, each batch gathered with one index_select."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, seed: int):
        self.X, self.y, self.generator = X, y, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.X) / BATCH)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.X), generator=self.generator)
        for i in range(0, len(self.X), BATCH):
            rows = order[i : i + BATCH]
            yield self.X.index_select(0, rows), self.y.index_select(0, rows)


def step(module: torch.nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor) -> None:
    loss = F.mse_loss(module(xb).squeeze(1), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def hand_gather(X: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    module = make_mlp(seed)
    optimizer = torch.optim.AdamW(module.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    batches = GatherBatches(X, y, seed)
    for _ in range(epochs):
        for xb, yb in batches:
            step(module, optimizer, xb, yb)


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


def lightning(X: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    """The same training as hand_gather through Lightning's Trainer (only importable in its own venv)."""
    import pytorch_lightning as pl

    class Regressor(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_mlp(seed)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            xb, yb = batch
            return F.mse_loss(self.net(xb).squeeze(1), yb)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.AdamW(self.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

    pl.Trainer(max_epochs=epochs, **LIGHTNING_FLAGS).fit(Regressor(), train_dataloaders=GatherBatches(X, y, seed))


# ---------------------------------------------------------------------- Lightning in its own venv


def lightning_python(venv: Path) -> tuple[str | None, str]:
    """(python of a venv where Lightning imports, how it was had) or (None, why not); creates the venv once."""
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    probe = [str(python), "-c", "import pytorch_lightning"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return str(python), "reused"
    print(f"installing PyTorch Lightning into {venv} (once)", file=sys.stderr)
    constraints = HERE.parent / "constraints.txt"
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "-q", "-c", str(constraints), *LIGHTNING_PACKAGES]]
    for command in steps:
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as exc:
            return None, f"`{' '.join(command[1:4])}` could not start: {exc}"
        if done.returncode:
            lines = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()
            return None, f"`{' '.join(command[1:4])}` failed: {lines[-1].strip()}"
    return str(python), "created"


class LightningWorker:
    """A worker process of the Lightning venv; each call trains once there and returns the seconds it took."""

    def __init__(self, python: str, rows: int, threads: int):
        # Lightning's notices and any traceback; open as long as the worker lives.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115
        command = [python, str(Path(__file__).resolve()), "--lightning-worker", "--rows", str(rows),
                   "--threads", str(threads)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True, cwd=HERE)
        self.info = self._reply()

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.log.seek(0)
            lines = self.log.read().strip().splitlines() or [f"exit status {self.process.returncode}"]
            raise RuntimeError(f"the Lightning worker stopped: {lines[-1].strip()}")
        return json.loads(line)

    def __call__(self, epochs: int, seed: int) -> float:
        self.process.stdin.write(f"{epochs} {seed}\n")
        self.process.stdin.flush()
        reply = self._reply()
        if reply["threads"] != self.info["threads"]:
            raise RuntimeError(f"Lightning changed torch's thread count to {reply['threads']}")
        return reply["seconds"]

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):  # a worker that died has said why already
            self.process.stdin.close()
        self.process.wait(timeout=30)
        self.log.close()


def lightning_worker(rows: int, threads: int) -> None:
    """Worker side: one JSON line for readiness, then one per 'EPOCHS SEED' line read from stdin."""
    import logging
    import warnings

    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed goes to the log, not into the replies
    sys.stdout = sys.stderr
    torch.set_num_threads(threads)
    import pytorch_lightning as pl

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)  # "GPU available: False ..." on every fit
    warnings.filterwarnings("ignore", module="pytorch_lightning|lightning_fabric")  # e.g. advice on num_workers
    X, y = make_data(rows)
    lightning(X[:1024], y[:1024], 1, 0)  # warm-up, as in the parent
    replies.write(json.dumps({"pytorch_lightning": pl.__version__, "torch": torch.__version__,
                              "python": platform.python_version(), "checksum": checksum(X, y),
                              "threads": torch.get_num_threads()}) + "\n")
    for line in sys.stdin:
        epochs, seed = map(int, line.split())
        start = time.perf_counter()
        lightning(X, y, epochs, seed)
        replies.write(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}) + "\n")


def start_lightning(rows: int, threads: int, expected: float) -> tuple[LightningWorker | None, dict | None, str]:
    """(worker, what it runs, "") or (None, None, why Lightning is left out), said in one line on stderr."""
    python, how = lightning_python(LIGHTNING_VENV)
    if python is None:
        print(f"PyTorch Lightning left out: {how}", file=sys.stderr)
        return None, None, how
    try:
        worker = LightningWorker(python, rows, threads)
    except RuntimeError as exc:
        print(f"PyTorch Lightning left out: {exc}", file=sys.stderr)
        return None, None, str(exc)
    if worker.info["checksum"] != expected:
        worker.close()
        raise RuntimeError(f"the Lightning worker built other data: checksum {worker.info['checksum']}, not {expected}")
    info = {k: worker.info[k] for k in ("pytorch_lightning", "torch", "python", "threads")}
    return worker, {**info, "venv": os.path.relpath(LIGHTNING_VENV, HERE.parent), "venv_was": how,
                    "trainer_flags": LIGHTNING_FLAGS, "batches": "GatherBatches, the same as hand_gather"}, ""


def machine() -> dict:
    """What the numbers were measured on."""
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_model": cpu_model(), "nproc": nproc, "cpus": os.cpu_count(), "gpu": torch.cuda.is_available(),
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steadiest on a shared machine)")
    parser.add_argument("--no-lightning", action="store_true", help="leave PyTorch Lightning out")
    parser.add_argument("--lightning-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "trainer_overhead.json")
    args = parser.parse_args()
    if args.lightning_worker:
        lightning_worker(args.rows, args.threads)
        return
    torch.set_num_threads(args.threads)
    X, y = make_data(args.rows)

    def timed(fn: Callable[[torch.Tensor, torch.Tensor, int, int], None]) -> Callable[[int, int], float]:
        def run(epochs: int, seed: int) -> float:
            start = time.perf_counter()
            fn(X, y, epochs, seed)
            return time.perf_counter() - start
        return run

    contenders = {name: timed(fn) for name, fn in
                  (("trainer", trainer), ("hand_gather", hand_gather), ("hand_dataloader", hand_dataloader))}
    if args.no_lightning:
        worker, lightning_info, lightning_reason = None, None, "left out with --no-lightning"
    else:
        worker, lightning_info, lightning_reason = start_lightning(args.rows, args.threads, checksum(X, y))
    if worker is not None:
        contenders["lightning"] = worker  # times itself in its process: the pipe is not counted
    trainer(X[:1024], y[:1024], 1, 0)  # warm-up: imports, allocator, kernels
    hand_gather(X[:1024], y[:1024], 1, 0)
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    try:
        for r in range(args.repeats):
            for name in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
                seconds[name].append(contenders[name](args.epochs, r))
    finally:
        if worker is not None:
            worker.close()

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
        "ratio_vs_lightning": rates["trainer"] / rates["lightning"] if "lightning" in rates else None,
        "ratio_vs_lightning_fastest_runs": fastest["trainer"] / fastest["lightning"] if "lightning" in rates else None,
        "lightning": lightning_info,
        **({"lightning_reason": lightning_reason} if lightning_info is None else {}),
        "target": 0.95,
        "meets_target": rates["trainer"] / rates["hand_gather"] >= 0.95,
        **machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shown = ("samples_per_s", "ratio", "ratio_of_fastest_runs", "overhead_us_per_batch", "ratio_vs_dataloader_loop",
             "ratio_vs_lightning", "meets_target")
    print(json.dumps({k: result[k] for k in shown}, indent=2))


if __name__ == "__main__":
    main()
