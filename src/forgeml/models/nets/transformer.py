"""A Transformer encoder over token ids or numeric time steps, with a padding mask and pooling."""

from __future__ import annotations

import torch
from torch import nn

from forgeml.models.nets.layers import (
    clamp_lengths,
    masked_mean,
    padding_mask,
    sinusoidal_positions,
)


class Transformer(nn.Module):
    """Sequences -> (B, n_outputs).

    Input: token ids (B, T) int64 when vocab_size is set (id 0 is padding), else numeric steps
    (B, T, n_features) projected to d_model. Positions are learned (a table of max_length rows) or
    sinusoidal. Pre-norm encoder layers; padded steps are masked out of attention. pooling "mean":
    mean over valid steps; "cls": the output at a learned token prepended to every sequence.
    """

    def __init__(
        self,
        n_outputs: int,
        *,
        vocab_size: int | None = None,
        n_features: int | None = None,
        max_length: int = 512,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
        positional: str = "learned",
        pooling: str = "mean",
        activation: str = "gelu",
    ):
        super().__init__()
        if (vocab_size is None) == (n_features is None):
            raise ValueError("give exactly one of vocab_size (token ids) and n_features (numeric steps)")
        if d_model % nhead:
            raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        if positional not in ("learned", "sinusoidal"):
            raise ValueError(f"positional must be 'learned' or 'sinusoidal' (got {positional!r})")
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls' for a Transformer (got {pooling!r})")
        self.tokens = nn.Embedding(vocab_size, d_model, padding_idx=0) if vocab_size else None
        self.project = None if vocab_size else nn.Linear(int(n_features), d_model)
        self.pooling = pooling
        self.max_length = max_length
        slots = max_length + (1 if pooling == "cls" else 0)
        if positional == "learned":
            self.positions = nn.Parameter(torch.zeros(slots, d_model))  # (T_max, d)
            nn.init.normal_(self.positions, std=0.02)
        else:  # fixed, rebuilt from the constructor arguments: kept out of the saved weights
            self.register_buffer("positions", sinusoidal_positions(slots, d_model), persistent=False)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if pooling == "cls" else None
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward or 2 * d_model, dropout,
                                           activation=activation, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = x[:, : self.max_length]  # longer inputs keep their first max_length steps
        B, T = x.shape[:2]
        lengths = clamp_lengths(lengths, B, T, x.device)  # (B,)
        h = self.tokens(x) if self.tokens is not None else self.project(x)  # (B, T, d)
        pad = padding_mask(lengths, T)  # (B, T)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(B, -1, -1), h], dim=1)  # (B, 1 + T, d)
            pad = torch.cat([pad.new_zeros(B, 1), pad], dim=1)  # (B, 1 + T)
        h = self.dropout(h + self.positions[: h.shape[1]])  # (B, T', d)
        h = self.encoder(h, src_key_padding_mask=pad)  # (B, T', d)
        summary = h[:, 0] if self.cls is not None else masked_mean(h, pad)  # (B, d)
        return self.head(summary)  # (B, n_outputs)
