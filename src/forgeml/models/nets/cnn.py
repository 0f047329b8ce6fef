"""A convolutional network for images: a stack of conv blocks, global pooling, a small head."""

from __future__ import annotations

import torch
from torch import nn

from forgeml.models.nets.layers import BatchNorm2d, make_activation


class ConvBlock(nn.Module):
    """`convs` x (Conv -> [BatchNorm] -> activation), then 2x2 pooling: (B, C_in, H, W) -> (B, C_out, H', W')."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, convs: int, batch_norm: bool, pool: str, act: str):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(convs):
            layers.append(nn.Conv2d(c_in if i == 0 else c_out, c_out, kernel_size, padding=kernel_size // 2,
                                    bias=not batch_norm))
            if batch_norm:
                layers.append(BatchNorm2d(c_out))
            layers.append(make_activation(act))
        if pool == "max":
            layers.append(nn.MaxPool2d(2))
        elif pool == "avg":
            layers.append(nn.AvgPool2d(2))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class CNN(nn.Module):
    """Images (B, C, H, W) -> (B, n_outputs).

    channels: output channels of each block; each block halves H and W with `pool` ("max" | "avg")
    while both are at least 2, "none" keeps the size. global_pool averages the last feature map to
    (B, channels[-1]); without it the map is flattened (its size follows from image_size = [H, W]).
    head_hidden > 0 adds one hidden layer to the head.
    """

    def __init__(
        self,
        in_channels: int,
        n_outputs: int,
        image_size: list[int],
        channels: list[int] = (32, 64),
        *,
        kernel_size: int = 3,
        convs_per_block: int = 2,
        batch_norm: bool = True,
        pool: str = "max",
        global_pool: bool = True,
        head_hidden: int = 0,
        dropout: float = 0.1,
        activation: str = "relu",
    ):
        super().__init__()
        if pool not in ("max", "avg", "none"):
            raise ValueError(f"pool must be 'max', 'avg' or 'none' (got {pool!r})")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, so the padding keeps the size (got {kernel_size})")
        H, W = (int(s) for s in image_size)
        blocks, c_in = [], in_channels
        for c_out in channels:
            can_pool = pool != "none" and H >= 2 and W >= 2
            blocks.append(ConvBlock(c_in, c_out, kernel_size, convs_per_block, batch_norm, pool if can_pool else "none",
                                    activation))
            if can_pool:
                H, W = H // 2, W // 2
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.global_pool = global_pool
        width = c_in if global_pool else c_in * H * W
        head: list[nn.Module] = [nn.Dropout(dropout)]
        if head_hidden:
            head += [nn.Linear(width, head_hidden), make_activation(activation), nn.Dropout(dropout)]
            width = head_hidden
        head.append(nn.Linear(width, n_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)  # (B, C', H', W')
        x = x.mean(dim=(2, 3)) if self.global_pool else x.flatten(1)  # (B, C') or (B, C' H' W')
        return self.head(x)  # (B, n_outputs)
