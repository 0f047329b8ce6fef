"""The callback protocol: named events, a read-only TrainState, decisions returned to the loop.

A callback never reaches into the trainer. At each event it reads the `TrainState` and may
return a `Decision` (or several, as a list); the loop alone acts on them, so two callbacks
cannot silently undo each other. Events, in order:

    before_fit
      before_epoch
        before_batch · (forward, backward, maybe an optimiser step) · after_batch
      (validation) · after_epoch
    after_fit               -- normal end, early stop included
    after_cancel_fit        -- fit left by an exception or an interruption instead of after_fit

Decisions: `Stop(reason)` ends training at the next optimiser-step boundary (the epoch is then
closed and validated as usual); `Interrupt(signal)` writes a resumable checkpoint and raises
TrainingInterrupted; `SaveCheckpoint()` writes one now; `NewBest(score)` records the epoch as
the best (its weights are kept); `RestoreBest()` loads the best epoch's weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from forgeml.training.state import TrainState

EVENTS = ("before_fit", "before_epoch", "before_batch", "after_batch", "after_epoch", "after_fit", "after_cancel_fit")


@dataclass(frozen=True)
class Stop:
    """End training early; `reason` becomes TrainState.stop_reason."""

    reason: str


@dataclass(frozen=True)
class Interrupt:
    """Stop now, write a resumable checkpoint and raise TrainingInterrupted."""

    signal: str


@dataclass(frozen=True)
class SaveCheckpoint:
    """Write a resumable checkpoint to the trainer's checkpoint_dir (rank 0 only)."""


@dataclass(frozen=True)
class NewBest:
    """The epoch just finished is the best so far on the monitored value; keep its weights."""

    score: float


@dataclass(frozen=True)
class RestoreBest:
    """Load the weights kept by the last NewBest."""


Decision = Stop | Interrupt | SaveCheckpoint | NewBest | RestoreBest
Result = Decision | Sequence[Decision] | None


class Callback:
    """Base class: override the events you need; each returns None or decisions.

    `order` sorts callbacks (lower runs first). `main_process_only` callbacks run on rank 0
    only (progress, logging); the others run on every rank, so they must decide the same way
    everywhere, which they do when they read only the (rank-averaged) TrainState.
    """

    order: ClassVar[int] = 0
    main_process_only: ClassVar[bool] = False

    def before_fit(self, state: TrainState) -> Result:
        return None

    def before_epoch(self, state: TrainState) -> Result:
        return None

    def before_batch(self, state: TrainState) -> Result:
        return None

    def after_batch(self, state: TrainState) -> Result:
        return None

    def after_epoch(self, state: TrainState) -> Result:
        return None

    def after_fit(self, state: TrainState) -> Result:
        return None

    def after_cancel_fit(self, state: TrainState, error: BaseException) -> None:
        """Clean up (close a progress bar, restore a signal handler); decisions are ignored here."""
        return None


def overrides(callback: Callback, event: str) -> bool:
    """True when `callback` implements `event` (so the loop skips the no-op base methods)."""
    return getattr(type(callback), event) is not getattr(Callback, event)
