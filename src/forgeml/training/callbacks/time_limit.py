"""Stop training when its time is up: `neural.max_time` seconds after the fit started.

AutoML gives every neural fit the time its candidate has left, the way LightGBM gets a deadline
callback, so a network cannot overrun the run's time limit. The loop closes the epoch it is in
(validation included) and early stopping, when on, still ends the fit with the best epoch's weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from forgeml.training.callbacks.base import Callback, Result, Stop

if TYPE_CHECKING:
    from forgeml.training.state import TrainState


class TimeLimit(Callback):
    """Stop at the first optimiser step after `seconds` have passed since before_fit."""

    order = 5

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = float(seconds)
        self.clock = clock
        self.start = 0.0

    def before_fit(self, state: TrainState) -> Result:
        self.start = self.clock()
        return None

    def after_batch(self, state: TrainState) -> Result:
        if self.clock() - self.start >= self.seconds:
            return Stop(f"time limit of {self.seconds:.1f}s reached")
        return None
