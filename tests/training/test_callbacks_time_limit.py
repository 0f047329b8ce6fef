"""TimeLimit: a fit stops at the first optimiser step after its seconds are up, and keeps its best epoch."""

from __future__ import annotations

import pytest

from forgeml.training.callbacks.base import Stop
from forgeml.training.callbacks.time_limit import TimeLimit
from forgeml.training.state import TrainState
from forgeml.training.trainer import Trainer
from training.helpers import mlp, neural, regression_data


def test_stops_once_the_clock_passes_the_limit():
    now = [100.0]
    limit = TimeLimit(2.0, clock=lambda: now[0])
    state = TrainState()
    limit.before_fit(state)
    now[0] = 101.9
    assert limit.after_batch(state) is None
    now[0] = 102.0
    assert limit.after_batch(state) == Stop("time limit of 2.0s reached")


def test_a_fit_with_max_time_stops_early_and_restores_the_best_epoch():
    ticks = iter(range(10_000))
    config = neural(epochs=50, batch_size=16, early_stopping={"patience": 100})
    trainer = Trainer(mlp(5, 1), config, task="regression")
    trainer.callbacks.append(TimeLimit(30.0, clock=lambda: float(next(ticks))))  # one "second" per batch
    state = trainer.fit(regression_data(), regression_data(20, seed=1))
    assert state.stopped_early and state.stop_reason == "time limit of 30.0s reached"
    assert state.epoch < 50 and state.best_epoch is not None


def test_max_time_must_be_positive():
    with pytest.raises(ValueError, match="max_time"):
        neural(max_time=0)


def test_max_time_in_the_spec_adds_the_callback():
    trainer = Trainer(mlp(5, 1), neural(max_time=5.0), task="regression")
    assert [c.seconds for c in trainer._assemble_callbacks() if isinstance(c, TimeLimit)] == [5.0]
    assert not any(isinstance(c, TimeLimit) for c in Trainer(mlp(5, 1), neural(), task="regression")._assemble_callbacks())
