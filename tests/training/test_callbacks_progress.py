from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from forgeml.training.callbacks import Progress
from forgeml.training.state import TrainState
from forgeml.training.trainer import Trainer
from training.helpers import mlp, neural


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_events_carry_an_eta_and_batches_are_throttled():
    clock, events = Clock(), []
    progress = Progress(lambda name, payload: events.append((name, payload)), batch_interval=0.5, clock=clock)
    state = TrainState(epochs=4, batches=10)
    progress.before_fit(state)
    for batch in range(1, 11):
        clock.now += 0.125  # 1.25 s per epoch
        state.batch, state.batch_loss = batch, torch.tensor(0.25)
        progress.after_batch(state)
    state.epoch, state.batch = 1, 0
    state.history = [{"epoch": 1, "train_loss": 0.3, "lr": 0.01, "seconds": 1.0}]
    progress.after_epoch(state)
    progress.after_fit(state)

    names = [name for name, _ in events]
    assert names == ["start", "batch", "batch", "epoch", "end"]  # a batch event at most every 0.5 s
    start, first, second, epoch, end = (payload for _, payload in events)
    assert start == {"epoch": 0, "epochs": 4, "batches": 10}
    assert first["batch"] == 4 and first["epoch"] == 1 and first["loss"] == 0.25
    assert first["eta_s"] == pytest.approx(4.5)  # 36 batches left at 0.125 s
    assert second["batch"] == 8 and second["eta_s"] == pytest.approx(4.0)
    assert epoch == {"epoch": 1, "train_loss": 0.3, "lr": 0.01, "seconds": 1.0, "epochs": 4, "eta_s": pytest.approx(3.75)}
    assert end["interrupted"] is False and end["epoch"] == 1


def test_on_event_receives_every_epoch_from_the_trainer():
    events = []
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(40, 3, generator=g), torch.randn(40, generator=g))
    Trainer(mlp(3, 1), neural(epochs=3, batch_size=8), task="regression",
            on_event=lambda name, payload: events.append((name, payload))).fit(data)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "end" and names.count("epoch") == 3
    assert [p["epoch"] for n, p in events if n == "epoch"] == [1, 2, 3]
    assert events[-2][1]["eta_s"] == 0.0  # the last epoch event: nothing left
