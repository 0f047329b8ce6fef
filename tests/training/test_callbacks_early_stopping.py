from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from forgeml.errors import SpecError
from forgeml.training.callbacks import Callback, EarlyStopping, NewBest, RestoreBest, Stop
from forgeml.training.callbacks.early_stopping import improves, resolve_monitor
from forgeml.training.state import TrainState
from forgeml.training.trainer import Trainer
from training.helpers import mlp, neural, weights


def test_resolve_monitor():
    logged = ("train_loss", "val_loss", "val_metric")
    assert resolve_monitor("val_loss", logged) == ("val_loss", "min")
    assert resolve_monitor("val_metric", logged) == ("val_metric", "max")
    assert resolve_monitor("train_loss", logged) == ("train_loss", "min")
    assert resolve_monitor("val_metric", ("train_loss",)) == ("train_loss", "min")  # no validation data
    with pytest.raises(SpecError, match=r"^early_stopping.monitor 'val_los' is not logged; did you mean 'val_loss'\?; logged: "):
        resolve_monitor("val_los", logged)
    with pytest.raises(SpecError, match=r"^early_stopping.monitor 'val_metric' is not logged; logged: train_loss, val_loss$"):
        resolve_monitor("val_metric", ("train_loss", "val_loss"))


def test_improves():
    assert improves(1.0, None, "min", 0.0) and improves(0.9, 1.0, "min", 0.05)
    assert not improves(0.96, 1.0, "min", 0.05) and not improves(float("nan"), None, "min", 0.0)
    assert improves(0.8, 0.7, "max", 0.0) and not improves(0.7, 0.7, "max", 0.0)


def test_decisions_read_from_the_state_alone():
    callback = EarlyStopping("val_loss", patience=2)
    state = TrainState(logged=("train_loss", "val_loss"))
    callback.before_fit(state)
    state.history, state.epoch = [{"val_loss": 1.0}], 1
    assert callback.after_epoch(state) == NewBest(1.0)
    state.best_epoch, state.best_score = 1, 1.0
    state.history.append({"val_loss": 1.2})
    state.epoch = 2
    assert callback.after_epoch(state) is None
    state.history.append({"val_loss": 1.0})  # equal is not better
    state.epoch = 3
    assert callback.after_epoch(state) == Stop("val_loss did not improve for 2 epochs (best 1 at epoch 1)")
    assert callback.after_fit(state) == RestoreBest()


class Snapshots(Callback):
    """Keeps the weights after every epoch (test-only: it holds the module)."""

    def __init__(self, module):
        self.module, self.by_epoch = module, {}

    def after_epoch(self, state):
        self.by_epoch[state.epoch] = weights(self.module)


def _scripted(scores):
    it = iter(scores)
    return lambda outputs, targets: next(it)


def _data():
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(32, 4, generator=g), torch.randn(32, generator=g))


@pytest.mark.parametrize("restore_best", [True, False])
def test_stops_after_patience_and_restores_the_best_epoch(restore_best):
    module = mlp(4, 1)
    snapshots = Snapshots(module)
    config = neural(epochs=20, learning_rate=0.05,
                    early_stopping={"monitor": "val_metric", "patience": 3, "restore_best": restore_best})
    trainer = Trainer(module, config, task="regression", metric=_scripted([0.5, 0.7, 0.6, 0.7, 0.69, 0.1] + [0.0] * 20),
                      callbacks=[snapshots])
    state = trainer.fit(_data(), _data())
    assert state.epoch == 5 and state.stopped_early
    assert state.best_epoch == 2 and state.best_score == 0.7
    assert state.stop_reason == "val_metric did not improve for 3 epochs (best 0.7 at epoch 2)"
    expected = snapshots.by_epoch[2 if restore_best else 5]
    assert all(torch.equal(v, expected[k]) for k, v in trainer.module.state_dict().items())


def test_min_delta_and_no_early_stopping():
    config = neural(epochs=6, early_stopping={"monitor": "val_metric", "patience": 2, "min_delta": 0.1})
    state = Trainer(mlp(4, 1), config, task="regression", metric=_scripted([0.5, 0.55, 0.58, 0.7, 0.75])).fit(_data(), _data())
    assert state.best_epoch == 1 and state.epoch == 3
    state = Trainer(mlp(4, 1), neural(epochs=4), task="regression", metric=_scripted([0.5, 0.4, 0.3, 0.2])).fit(_data(), _data())
    assert state.epoch == 4 and not state.stopped_early and state.best_epoch is None


def test_a_users_early_stopping_replaces_the_specs():
    config = neural(epochs=10, early_stopping={"patience": 1})
    state = Trainer(mlp(4, 1), config, task="regression", metric=_scripted([0.5] * 10),
                    callbacks=[EarlyStopping("val_metric", patience=4)]).fit(_data(), _data())
    assert state.epoch == 5 and state.stop_reason.startswith("val_metric did not improve for 4 epochs")
