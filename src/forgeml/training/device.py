"""Device and mixed-precision choice from NeuralSpec.device / .mixed_precision."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from forgeml.errors import SpecError


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str, *, local_rank: int = 0) -> torch.device:
    """auto -> cuda (this process's local rank) if available, else mps, else cpu; explicit names are checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise SpecError(
                "neural.device 'mps' is not available on this machine (torch sees no Apple GPU); use 'auto' or 'cpu'"
            )
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise SpecError(
                f"neural.device '{name}' is not available on this machine (torch sees no CUDA device); use 'auto' or 'cpu'"
            )
        count = torch.cuda.device_count()
        index = int(name.split(":")[1]) if ":" in name else local_rank % count
        if index >= count:
            raise SpecError(
                f"neural.device '{name}' does not exist: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
        return torch.device("cuda", index)
    raise SpecError(f"neural.device '{name}' is not a known device; use auto, cpu, mps, cuda or cuda:N")


def resolve_precision(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None: full precision). auto: bf16 on CUDA GPUs that support it, else off.

    On CPU and MPS bf16 runs only when asked for explicitly; fp16 needs CUDA (it uses a GradScaler).
    """
    if mode == "off":
        return None
    cuda = device.type == "cuda"
    if mode == "auto":
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    if mode == "bf16":
        if cuda and not torch.cuda.is_bf16_supported():
            gpu = torch.cuda.get_device_name(device)
            raise SpecError(f"neural.mixed_precision 'bf16' is not supported by {gpu}; use 'fp16' or 'off'")
        return torch.bfloat16
    if mode == "fp16":
        if not cuda:
            raise SpecError(
                f"neural.mixed_precision 'fp16' needs a CUDA device (training on {device.type}); use 'bf16' or 'off'"
            )
        return torch.float16
    raise SpecError(f"neural.mixed_precision '{mode}' is not known; use auto, off, bf16 or fp16")


_NULL = contextlib.nullcontext()  # reusable: it keeps no state


def autocast_factory(device: torch.device, dtype: torch.dtype | None) -> Callable[[], AbstractContextManager]:
    """A function returning a fresh autocast context (or a no-op one when dtype is None)."""
    if dtype is None:
        return lambda: _NULL
    return lambda: torch.autocast(device.type, dtype=dtype)
