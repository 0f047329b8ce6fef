"""Progress events for a renderer (the CLI draws them with Rich); the library itself never prints.

Events sent to `sink(name, payload)`, rank 0 only:
    "start"  {epoch, epochs, batches}                       -- epoch: epochs already done (resume)
    "batch"  {epoch, epochs, batch, batches, loss, eta_s}   -- throttled to one per `batch_interval` s
    "epoch"  {the history row..., epochs, eta_s}            -- after every epoch
    "end"    {epoch, epochs, stopped_early, stop_reason, best_epoch, best_score, interrupted}
`epoch` in "batch" is 1-based (the epoch running); eta_s is the time left if every remaining
epoch runs (an upper bound when early stopping ends training sooner).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from forgeml.training.callbacks.base import Callback, Result

if TYPE_CHECKING:
    from forgeml.training.state import TrainState

EventSink = Callable[[str, dict[str, Any]], None]


class Progress(Callback):
    """Turn loop events into "start" / "batch" / "epoch" / "end" events with an ETA."""

    main_process_only = True
    order = 30

    def __init__(self, sink: EventSink, *, batch_interval: float = 0.5, clock: Callable[[], float] = time.perf_counter):
        self.sink = sink
        self.batch_interval = batch_interval
        self.clock = clock

    def before_fit(self, state: TrainState) -> Result:
        self._start = self._last = self.clock()
        self._first_epoch = state.epoch
        self._batches_done = 0
        self.sink("start", {"epoch": state.epoch, "epochs": state.epochs, "batches": state.batches})
        return None

    def after_batch(self, state: TrainState) -> Result:
        self._batches_done += 1
        now = self.clock()
        if now - self._last < self.batch_interval:
            return None
        self._last = now
        remaining = (state.epochs - state.epoch - 1) * state.batches + (state.batches - state.batch)
        eta = (now - self._start) / self._batches_done * remaining
        loss = None if state.batch_loss is None else float(state.batch_loss)
        self.sink("batch", {
            "epoch": state.epoch + 1, "epochs": state.epochs, "batch": state.batch, "batches": state.batches,
            "loss": loss, "eta_s": eta,
        })
        return None

    def after_epoch(self, state: TrainState) -> Result:
        done = state.epoch - self._first_epoch
        eta = (self.clock() - self._start) / max(done, 1) * (state.epochs - state.epoch)
        self.sink("epoch", {**state.history[-1], "epochs": state.epochs, "eta_s": eta})
        return None

    def after_fit(self, state: TrainState) -> Result:
        self._end(state, interrupted=False)
        return None

    def after_cancel_fit(self, state: TrainState, error: BaseException) -> None:
        self._end(state, interrupted=True)

    def _end(self, state: TrainState, *, interrupted: bool) -> None:
        self.sink("end", {
            "epoch": state.epoch, "epochs": state.epochs, "stopped_early": state.stopped_early,
            "stop_reason": state.stop_reason, "best_epoch": state.best_epoch, "best_score": state.best_score,
            "interrupted": interrupted,
        })
