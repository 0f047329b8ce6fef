from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from forgeml.training.callbacks import PeriodicCheckpoint, SaveCheckpoint
from forgeml.training.checkpoint import read_meta
from forgeml.training.state import TrainState
from forgeml.training.trainer import Trainer
from training.helpers import assert_same_weights, mlp, neural


def test_asks_every_n_epochs():
    callback = PeriodicCheckpoint(2)
    asked = [e for e in range(1, 8) if callback.after_epoch(TrainState(epoch=e)) == SaveCheckpoint()]
    assert asked == [2, 4, 6]
    assert PeriodicCheckpoint(0).after_epoch(TrainState(epoch=2)) is None


def _data():
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(50, 3, generator=g), torch.randn(50, generator=g))


def test_periodic_checkpoint_resumes_to_the_same_end(tmp_path):
    config = neural(epochs=5, batch_size=8, checkpoint_every=2, optimizer="adam", scheduler="cosine")
    full = Trainer(mlp(3, 1, dropout=0.2), config, task="regression", seed=1, checkpoint_dir=tmp_path)
    full.fit(_data())
    assert read_meta(tmp_path)["epoch"] == 4  # the last multiple of 2
    resumed = Trainer(mlp(3, 1, dropout=0.2, seed=9), config, task="regression", seed=1)
    state = resumed.fit(_data(), resume_from=tmp_path)
    assert state.epoch == 5 and len(state.history) == 5
    assert_same_weights(resumed.module, full.module)


def test_no_checkpoint_dir_no_files_and_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    Trainer(mlp(3, 1), neural(epochs=2, checkpoint_every=1), task="regression").fit(_data())
    assert list(tmp_path.iterdir()) == []
    assert "neural.checkpoint_every=1 is ignored: this Trainer has no checkpoint_dir" in caplog.text
