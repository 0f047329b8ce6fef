from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from forgeml.training.callbacks import Callback, NewBest, Stop
from forgeml.training.callbacks.base import overrides
from forgeml.training.trainer import Trainer
from training.helpers import mlp, neural


def _data(rows=40):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(rows, 3, generator=g), torch.randn(rows, generator=g))


class StopAfterBatches(Callback):
    def __init__(self, n):
        self.n, self.seen = n, 0

    def after_batch(self, state):
        self.seen += 1
        return Stop(f"budget of {self.n} batches spent") if self.seen == self.n else None


def test_a_stop_mid_epoch_closes_and_validates_that_epoch():
    state = Trainer(mlp(3, 1), neural(epochs=5, batch_size=8), task="regression",
                    callbacks=[StopAfterBatches(7)]).fit(_data(), _data(8))
    assert state.epoch == 2 and state.global_step == 7 and state.stopped_early
    assert state.stop_reason == "budget of 7 batches spent"
    assert "val_loss" in state.history[-1]


def test_a_stop_waits_for_the_accumulation_group_to_step():
    state = Trainer(mlp(3, 1), neural(epochs=5, batch_size=8, grad_accumulation=3), task="regression",
                    callbacks=[StopAfterBatches(2)]).fit(_data())
    assert state.global_step == 1 and state.epoch == 1


def test_callbacks_run_in_order_and_may_return_several_decisions():
    calls = []

    class Late(Callback):
        order = 50

        def after_epoch(self, state):
            calls.append("late")

    class Early(Callback):
        order = -5

        def after_epoch(self, state):
            calls.append("early")
            return [NewBest(1.0), Stop("enough")]

    state = Trainer(mlp(3, 1), neural(epochs=3), task="regression", callbacks=[Late(), Early()]).fit(_data())
    assert calls == ["early", "late"]
    assert state.best_epoch == 1 and state.best_score == 1.0 and state.stop_reason == "enough"


def test_an_unknown_decision_is_a_bug_and_says_so():
    class Wrong(Callback):
        def after_epoch(self, state):
            return "stop"

    with pytest.raises(TypeError, match="a callback returned 'stop'; expected Stop, Interrupt"):
        Trainer(mlp(3, 1), neural(epochs=2), task="regression", callbacks=[Wrong()]).fit(_data())


def test_after_cancel_fit_sees_the_error():
    seen = []

    class Boom(Callback):
        def after_batch(self, state):
            raise RuntimeError("boom")

    class Watch(Callback):
        def after_fit(self, state):
            seen.append("after_fit")

        def after_cancel_fit(self, state, error):
            seen.append(error)

    with pytest.raises(RuntimeError, match="boom"):
        Trainer(mlp(3, 1), neural(epochs=2), task="regression", callbacks=[Boom(), Watch()]).fit(_data())
    assert len(seen) == 1 and str(seen[0]) == "boom"


def test_overrides():
    assert overrides(StopAfterBatches(1), "after_batch") and not overrides(StopAfterBatches(1), "after_epoch")
