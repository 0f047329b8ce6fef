from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from forgeml.training.callbacks import MetricsLogger
from forgeml.training.trainer import Trainer
from training.helpers import mlp, neural


def test_each_epoch_row_goes_to_the_sink_with_its_epoch_as_step():
    logged = []
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(40, 3, generator=g), torch.randn(40, generator=g))

    def sink(metrics, step):  # the shape of mlflow.log_metrics(metrics, step)
        logged.append((step, metrics))

    state = Trainer(mlp(3, 1), neural(epochs=3, batch_size=8), task="regression", metric=lambda o, t: 0.5,
                    callbacks=[MetricsLogger(sink, prefix="fold0/")]).fit(data, data)
    assert [step for step, _ in logged] == [1, 2, 3]
    step, metrics = logged[-1]
    assert set(metrics) == {"fold0/train_loss", "fold0/val_loss", "fold0/val_metric", "fold0/lr", "fold0/seconds"}
    assert metrics["fold0/val_loss"] == state.history[-1]["val_loss"]
    assert all(isinstance(v, float) for v in metrics.values())
