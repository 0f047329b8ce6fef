from __future__ import annotations

import pytest
import torch

from forgeml.errors import SpecError
from forgeml.training.device import autocast_factory, resolve_device, resolve_precision

CPU = torch.device("cpu")


def test_cpu_and_auto():
    assert resolve_device("cpu") == CPU
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert resolve_device("auto") == CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_missing_cuda(name):
    with pytest.raises(SpecError, match=rf"^neural.device '{name}' is not available on this machine"):
        resolve_device(name)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_missing_mps():
    with pytest.raises(SpecError, match="^neural.device 'mps' is not available"):
        resolve_device("mps")


def test_unknown_device():
    with pytest.raises(SpecError, match="^neural.device 'tpu' is not a known device; use auto, cpu, mps, cuda or cuda:N"):
        resolve_device("tpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_choices():
    cuda = resolve_device("cuda")
    assert cuda.type == "cuda"
    with pytest.raises(SpecError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    assert resolve_precision("fp16", cuda) is torch.float16
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    assert resolve_precision("auto", cuda) is expected


def test_precision_on_cpu():
    assert resolve_precision("auto", CPU) is None
    assert resolve_precision("off", CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    with pytest.raises(SpecError, match="^neural.mixed_precision 'fp16' needs a CUDA device"):
        resolve_precision("fp16", CPU)


def test_autocast_factory():
    with autocast_factory(CPU, torch.bfloat16)():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast_factory(CPU, None)():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
