"""Forward each epoch's history row to a metrics sink (forgeml connects it to an MLflow run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from forgeml.training.callbacks.base import Callback, Result

if TYPE_CHECKING:
    from forgeml.training.state import TrainState

Sink = Callable[[dict[str, float], int], None]


class MetricsLogger(Callback):
    """Call `sink(metrics, step)` after each epoch with the row's numbers (train_loss, val_loss,
    val_metric, lr, seconds), keys prefixed by `prefix`, step = the 1-based epoch. Rank 0 only."""

    main_process_only = True
    order = 40

    def __init__(self, sink: Sink, *, prefix: str = ""):
        self.sink = sink
        self.prefix = prefix

    def after_epoch(self, state: TrainState) -> Result:
        row = state.history[-1]
        metrics = {
            f"{self.prefix}{key}": float(value)
            for key, value in row.items()
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        self.sink(metrics, int(row["epoch"]))
        return None
