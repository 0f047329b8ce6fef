"""Data parallelism: start W processes, find out which one we are, average numbers across them.

`launch(fn, workers, *args)` runs fn(rank, world_size, *args) in `workers` fresh processes joined
in a torch.distributed group (gloo on CPU, NCCL when there is a GPU per process) and returns the
values fn returned, by rank. The Trainer calls `context()` and, in a group, wraps the module in
DistributedDataParallel; under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set) it joins the group itself.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from forgeml.errors import SpecError, TrainingError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place in the group; world_size 1 when not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


def context() -> DistContext:
    """The current group (joining torchrun's from the environment when not yet joined), or a single process."""
    if not dist.is_available():
        return DistContext()
    if not dist.is_initialized():
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1 or "RANK" not in os.environ or "MASTER_ADDR" not in os.environ:
            return DistContext()
        dist.init_process_group(_backend())
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank() % max(torch.cuda.device_count(), 1)))
    return DistContext(dist.get_rank(), dist.get_world_size(), local)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over ranks (in place, also returned); a no-op outside a group."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_backend() == "nccl" and not values.is_cuda:  # NCCL reduces GPU tensors only
            on_gpu = values.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(on_gpu, op=dist.ReduceOp.SUM)
            values.copy_(on_gpu)
        else:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, fn: Callable[..., Any], world_size: int, port: int, backend: str, threads: int,
            out: str, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(threads)
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    path = Path(out) / f"rank-{rank}.pkl"
    try:
        value = fn(rank, world_size, *args)
    except BaseException as exc:
        path.write_bytes(pickle.dumps((False, f"{type(exc).__name__}: {exc}")))
        raise  # the group is left as is: the parent stops the other ranks
    path.write_bytes(pickle.dumps((True, value)))
    dist.barrier()
    # Leave now: gloo's background threads sometimes abort the interpreter's normal exit
    # ("terminate called without an active exception"), and every rank is done with the group.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def launch(fn: Callable[..., Any], workers: int, *args: Any, backend: str | None = None) -> list[Any]:
    """Run fn(rank, world_size, *args) in `workers` processes and return their results by rank.

    fn must be importable (a module-level function) and its arguments and result picklable:
    processes are spawned, not forked. With workers == 1 fn runs here, without a group.
    Threads per process are set to cpu_count // workers so processes do not fight over cores.
    """
    if workers < 1:
        raise SpecError(f"workers must be at least 1 (got {workers})")
    if workers == 1:
        return [fn(0, 1, *args)]
    backend = backend or ("nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= workers else "gloo")
    threads = max(1, (os.cpu_count() or 1) // workers)
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="forgeml-launch-") as out:
        try:
            mp.start_processes(_worker, args=(fn, workers, free_port(), backend, threads, out, args),
                               nprocs=workers, join=True, start_method="spawn")
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
            outcomes = _outcomes(Path(out), workers)
            if all(ok for ok, _ in outcomes.values()) and len(outcomes) == workers:
                logger.warning("a worker ended abnormally after returning its result (%s)", exc)
            else:
                reported = [f"rank {rank}: {value}" for rank, (ok, value) in sorted(outcomes.items()) if not ok]
                detail = "; ".join(reported) or str(exc).strip().splitlines()[-1]
                raise TrainingError(f"distributed training failed: {detail}") from exc
        return [value for _, (_, value) in sorted(_outcomes(Path(out), workers).items())]


def _outcomes(out: Path, workers: int) -> dict[int, tuple[bool, Any]]:
    """(succeeded, result or error message) of each rank that got as far as reporting."""
    found = {}
    for rank in range(workers):
        path = out / f"rank-{rank}.pkl"
        if path.is_file():
            found[rank] = pickle.loads(path.read_bytes())
    return found
