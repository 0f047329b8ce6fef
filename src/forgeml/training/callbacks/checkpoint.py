"""Ask for a resumable checkpoint every N epochs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forgeml.training.callbacks.base import Callback, Result, SaveCheckpoint

if TYPE_CHECKING:
    from forgeml.training.state import TrainState


class PeriodicCheckpoint(Callback):
    """Return SaveCheckpoint after every `every`-th epoch (config.checkpoint_every); 0 turns it off.

    The trainer writes the checkpoint (rank 0 only) into its checkpoint_dir, replacing the last one.
    """

    order = 20

    def __init__(self, every: int):
        self.every = every

    def after_epoch(self, state: TrainState) -> Result:
        if self.every and state.epoch % self.every == 0:
            return SaveCheckpoint()
        return None
