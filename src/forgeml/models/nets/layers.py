"""Pieces shared by the networks: activations, padding masks, masked pooling, sinusoidal positions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (one of ACTIVATIONS)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}' (known: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


class BatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that also trains on a batch of one row (the last batch of an epoch can be one):
    such a batch is normalised with the running statistics instead of raising. (B, C) -> (B, C)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that also trains on one 1x1 map per channel (see BatchNorm1d). (B, C, H, W) -> same"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


def padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True at padded steps (the convention of nn.MultiheadAttention)."""
    steps = torch.arange(T, device=lengths.device)  # (T,)
    return steps[None, :] >= lengths[:, None]  # (B, T)


def masked_mean(x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Mean over the valid steps: x (B, T, C), pad (B, T) True at padding -> (B, C)."""
    keep = (~pad).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)  # (B, C)


def sinusoidal_positions(T: int, d: int) -> torch.Tensor:
    """The fixed sine/cosine position table of "Attention Is All You Need": (T, d)."""
    position = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))  # (ceil(d/2),)
    table = torch.zeros(T, d)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d // 2])
    return table


def clamp_lengths(lengths: torch.Tensor | None, B: int, T: int, device: torch.device) -> torch.Tensor:
    """Lengths as int64 on `device`, in [1, T] (an empty sequence still reads its first, padding, step)."""
    if lengths is None:
        return torch.full((B,), T, dtype=torch.long, device=device)
    return lengths.to(device=device, dtype=torch.long).clamp(min=1, max=T)
