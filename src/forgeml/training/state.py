"""The small explicit state the loop keeps and callbacks read, and the interruption error."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.errors import Interrupted

if TYPE_CHECKING:
    import torch

# Fields saved in a checkpoint; the others describe the run in progress and are rebuilt by fit.
PERSISTED = ("epoch", "global_step", "history", "best_epoch", "best_score", "stopped_early", "stop_reason")


@dataclass
class TrainState:
    """Where training stands. Callbacks read it; only the Trainer writes it.

    `history` holds one row per finished epoch: epoch (1-based), train_loss, val_loss (with
    validation data), val_metric (with a metric and validation data), lr, seconds.
    """

    epoch: int = 0  # epochs completed
    global_step: int = 0  # optimiser steps taken
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None  # 1-based epoch of the best monitored value
    best_score: float | None = None
    stopped_early: bool = False
    stop_reason: str | None = None
    # The run in progress: rebuilt by each fit, not persisted.
    epochs: int = 0  # planned epochs (config.epochs)
    batch: int = 0  # batches completed in the current epoch (this process)
    batches: int = 0  # batches per epoch (this process)
    batch_loss: torch.Tensor | None = None  # last batch's loss, a 0-d tensor on the device (float() syncs)
    monitor: str | None = None  # the logged key early stopping and plateau watch
    logged: tuple[str, ...] = ()  # the keys each history row will have besides epoch, lr and seconds
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints and emits events (rank 0)."""
        return self.rank == 0

    def persisted(self) -> dict[str, Any]:
        return {k: copy.deepcopy(getattr(self, k)) for k in PERSISTED}


class TrainingInterrupted(Interrupted):
    """SIGINT or SIGTERM stopped fit; a resumable checkpoint was written first (exit code 130)."""

    def __init__(self, message: str, *, epoch: int, checkpoint_path: Path | None, state: TrainState | None = None):
        super().__init__(message)
        self.epoch = epoch
        self.checkpoint_path = checkpoint_path
        self.state = state
