"""A recurrent network (LSTM or GRU) over token ids or numeric time steps, padding-aware via packing."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from forgeml.models.nets.layers import clamp_lengths, masked_mean, padding_mask


class RNN(nn.Module):
    """Sequences -> (B, n_outputs).

    Input: token ids (B, T) int64 when vocab_size is set (id 0 is padding), else numeric steps
    (B, T, n_features). lengths (B,) counts the valid leading steps; padded steps never reach the
    recurrence (the batch is packed). pooling "last": the final hidden state of the top layer (both
    directions when bidirectional); "mean": the mean of the top layer's outputs over valid steps.
    """

    def __init__(
        self,
        n_outputs: int,
        *,
        vocab_size: int | None = None,
        n_features: int | None = None,
        embedding_dim: int = 64,
        rnn_type: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.1,
        pooling: str = "last",
    ):
        super().__init__()
        if (vocab_size is None) == (n_features is None):
            raise ValueError("give exactly one of vocab_size (token ids) and n_features (numeric steps)")
        if rnn_type not in ("lstm", "gru"):
            raise ValueError(f"rnn_type must be 'lstm' or 'gru' (got {rnn_type!r})")
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean' for an RNN (got {pooling!r})")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0) if vocab_size else None
        width = embedding_dim if vocab_size else int(n_features)
        cell = nn.LSTM if rnn_type == "lstm" else nn.GRU
        self.rnn = cell(width, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=bidirectional,
                        dropout=dropout if num_layers > 1 else 0.0)
        self.pooling = pooling
        self.directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * self.directions, n_outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        B, T = x.shape[:2]
        lengths = clamp_lengths(lengths, B, T, x.device)  # (B,)
        h = self.embedding(x) if self.embedding is not None else x  # (B, T, E)
        packed = pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, H)
            summary = torch.cat(list(h_n[-self.directions:]), dim=1)  # (B, dirs * H)
        else:
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, dirs * H)
            summary = masked_mean(out, padding_mask(lengths, T))  # (B, dirs * H)
        return self.head(self.dropout(summary))  # (B, n_outputs)
