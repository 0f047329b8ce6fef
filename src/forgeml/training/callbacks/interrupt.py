"""Turn SIGINT / SIGTERM into a clean stop: finish the batch, checkpoint, raise TrainingInterrupted."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

from forgeml.training.callbacks.base import Callback, Interrupt, Result

if TYPE_CHECKING:
    from forgeml.training.state import TrainState


class SignalInterrupt(Callback):
    """Install handlers for the fit (main thread only) and restore the previous ones after it.

    The first signal only sets a flag; the loop sees it after the current batch (or epoch) and
    gets an Interrupt decision. A second signal restores the previous handlers and raises
    KeyboardInterrupt at once, for a user who does not want to wait for the checkpoint.
    """

    order = 1000  # last: a signal sent by another callback during the same event is seen at once

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)):
        self.signals = signals
        self.received: str | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def before_fit(self, state: TrainState) -> Result:
        self.received = None
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            self._restore()
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def after_batch(self, state: TrainState) -> Result:
        return Interrupt(self.received) if self.received else None

    def after_epoch(self, state: TrainState) -> Result:
        return Interrupt(self.received) if self.received else None

    def after_fit(self, state: TrainState) -> Result:
        self._restore()
        return None

    def after_cancel_fit(self, state: TrainState, error: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}
