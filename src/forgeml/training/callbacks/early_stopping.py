"""Stop when the monitored quantity stops improving; end with the best epoch's weights."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from forgeml.errors import SpecError, did_you_mean
from forgeml.training.callbacks.base import Callback, NewBest, RestoreBest, Result, Stop

if TYPE_CHECKING:
    from forgeml.spec import EarlyStoppingSpec
    from forgeml.training.state import TrainState


def resolve_monitor(requested: str, logged: tuple[str, ...]) -> tuple[str, str]:
    """The history key to watch and its direction ("min" for losses, "max" otherwise).

    Without validation data (no val_loss logged) a val_* monitor falls back to train_loss.
    """
    if "val_loss" not in logged and requested.startswith("val_"):
        return "train_loss", "min"
    if requested not in logged:
        raise SpecError(
            f"early_stopping.monitor '{requested}' is not logged{did_you_mean(requested, logged)}; "
            f"logged: {', '.join(logged)}"
        )
    return requested, ("min" if requested.endswith("loss") else "max")


def improves(value: float | None, best: float | None, mode: str, min_delta: float) -> bool:
    """True when `value` beats `best` by more than `min_delta` in direction `mode`; NaN never does."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Keras-style early stopping, stateless: it reads best_epoch/best_score from the TrainState.

    After each epoch it returns NewBest when the monitored value improves and Stop once
    `patience` epochs have passed without improvement; after fit, RestoreBest when asked.
    """

    order = 10

    def __init__(self, monitor: str = "val_loss", *, patience: int = 10, min_delta: float = 0.0, restore_best: bool = True):
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.key, self.mode = monitor, "min"

    @classmethod
    def from_spec(cls, spec: EarlyStoppingSpec) -> EarlyStopping:
        return cls(spec.monitor, patience=spec.patience, min_delta=spec.min_delta, restore_best=spec.restore_best)

    def before_fit(self, state: TrainState) -> Result:
        self.key, self.mode = resolve_monitor(self.monitor, state.logged)
        return None

    def after_epoch(self, state: TrainState) -> Result:
        value = state.history[-1].get(self.key)
        if improves(value, state.best_score, self.mode, self.min_delta):
            return NewBest(float(value))
        waited = state.epoch - (state.best_epoch or 0)
        if waited >= self.patience:
            best = "none finite" if state.best_score is None else f"{state.best_score:.4g} at epoch {state.best_epoch}"
            return Stop(f"{self.key} did not improve for {waited} epochs (best {best})")
        return None

    def after_fit(self, state: TrainState) -> Result:
        if self.restore_best and state.best_epoch is not None and state.best_epoch != state.epoch:
            return RestoreBest()
        return None
