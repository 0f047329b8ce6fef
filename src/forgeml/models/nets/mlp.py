"""A multilayer perceptron for tables: numeric columns plus learned embeddings of categorical codes."""

from __future__ import annotations

import torch
from torch import nn

from forgeml.models.nets.layers import BatchNorm1d, make_activation


def embedding_size(cardinality: int) -> int:
    """fastai's rule of thumb for an embedding width, capped at 50."""
    return int(min(50, max(2, round(1.6 * cardinality**0.56))))


class MLP(nn.Module):
    """Rows (B, F) numeric and optionally (B, C) categorical codes -> (B, n_outputs).

    cardinalities: number of codes per categorical column, code 0 included (0 = unknown or missing).
    Each hidden layer is Linear -> [BatchNorm] -> activation -> Dropout.
    """

    def __init__(
        self,
        n_numeric: int,
        n_outputs: int,
        hidden_sizes: list[int] = (128, 64),
        *,
        cardinalities: list[int] = (),
        embedding_dims: list[int] | None = None,
        batch_norm: bool = True,
        dropout: float = 0.1,
        activation: str = "relu",
    ):
        super().__init__()
        dims = list(embedding_dims) if embedding_dims is not None else [embedding_size(c) for c in cardinalities]
        if len(dims) != len(cardinalities):
            raise ValueError(f"{len(cardinalities)} categorical columns but {len(dims)} embedding sizes")
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cardinalities, dims))
        self.embedding_dropout = nn.Dropout(dropout)
        width = n_numeric + sum(dims)
        if width == 0:
            raise ValueError("an MLP needs at least one input column")
        layers: list[nn.Module] = []
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size, bias=not batch_norm))
            if batch_norm:
                layers.append(BatchNorm1d(size))
            layers += [make_activation(activation), nn.Dropout(dropout)]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_outputs)

    def features(self, x: torch.Tensor, x_cat: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden layer: (B, F), (B, C) -> (B, hidden_sizes[-1])."""
        parts = [x] if x.shape[1] else []  # (B, F)
        if len(self.embeddings):
            emb = [e(x_cat[:, i]) for i, e in enumerate(self.embeddings)]  # C x (B, d_i)
            parts.append(self.embedding_dropout(torch.cat(emb, dim=1)))  # (B, sum d_i)
        return self.body(torch.cat(parts, dim=1))

    def forward(self, x: torch.Tensor, x_cat: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x, x_cat))  # (B, n_outputs)
