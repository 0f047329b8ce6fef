"""An MLP autoencoder: rows squeezed through a bottleneck and rebuilt; `encode` gives the codes."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from forgeml.models.nets.layers import BatchNorm1d, make_activation


def _stack(sizes: list[int], batch_norm: bool, dropout: float, activation: str) -> nn.Sequential:
    """Linear -> [BatchNorm] -> activation -> Dropout between consecutive sizes."""
    layers: list[nn.Module] = []
    for a, b in pairwise(sizes):
        layers.append(nn.Linear(a, b, bias=not batch_norm))
        if batch_norm:
            layers.append(BatchNorm1d(b))
        layers += [make_activation(activation), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """Rows (B, F) -> reconstruction (B, F) through codes (B, bottleneck).

    The decoder mirrors the encoder's hidden sizes; both ends are linear (no activation on the code
    or on the output), so inputs should be standardised.
    """

    def __init__(
        self,
        n_features: int,
        hidden_sizes: list[int] = (64,),
        bottleneck: int = 8,
        *,
        batch_norm: bool = False,
        dropout: float = 0.0,
        activation: str = "relu",
    ):
        super().__init__()
        sizes = [n_features, *hidden_sizes]
        self.encoder = nn.Sequential(_stack(sizes, batch_norm, dropout, activation), nn.Linear(sizes[-1], bottleneck))
        back = [bottleneck, *reversed(list(hidden_sizes))]
        self.decoder = nn.Sequential(_stack(back, batch_norm, dropout, activation), nn.Linear(back[-1], n_features))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, F) -> (B, bottleneck)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, bottleneck) -> (B, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))  # (B, F)
