from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from forgeml.training.optim import LrSchedule, make_optimizer
from forgeml.training.trainer import Trainer
from training.helpers import mlp, neural


def _data(rows: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(rows, 5, generator=g)
    return TensorDataset(X, X @ torch.arange(1.0, 6.0) + 0.1 * torch.randn(rows, generator=g))


@pytest.mark.parametrize(
    ("settings", "kind", "state_keys"),
    [
        ({"optimizer": "sgd", "momentum": 0.9, "nesterov": True}, torch.optim.SGD, {"momentum_buffer"}),
        ({"optimizer": "sgd", "momentum": 0.0}, torch.optim.SGD, set()),
        ({"optimizer": "adam"}, torch.optim.Adam, {"step", "exp_avg", "exp_avg_sq"}),
        ({"optimizer": "adamw"}, torch.optim.AdamW, {"step", "exp_avg", "exp_avg_sq"}),
        ({"optimizer": "rmsprop", "momentum": 0.5}, torch.optim.RMSprop, {"step", "square_avg", "momentum_buffer"}),
    ],
)
def test_each_optimiser_trains(settings, kind, state_keys):
    module = mlp(5, 1)
    before = module[0].weight.detach().clone()
    trainer = Trainer(module, neural(epochs=5, batch_size=16, learning_rate=1e-2, **settings), task="regression")
    state = trainer.fit(_data())
    optimizer = trainer._optimizer
    assert type(optimizer) is kind
    assert set(optimizer.state[module[0].weight]) >= state_keys
    if "momentum" in settings:
        assert optimizer.param_groups[0]["momentum"] == settings["momentum"]
    if "nesterov" in settings:
        assert optimizer.param_groups[0]["nesterov"] is True
    assert not torch.equal(before, module[0].weight)
    assert state.history[-1]["train_loss"] < state.history[0]["train_loss"]


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_weight_decay_is_passed_to_the_optimiser(name):
    optimizer = make_optimizer(mlp(5, 1), neural(optimizer=name, weight_decay=0.1))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1]


def test_l2_decay_of_adam_goes_through_the_gradient():
    """Adam adds weight_decay * w to the gradient: with a zero gradient the first step moves w by lr."""
    module = mlp(5, 1)
    w = module[0].weight.detach().clone()
    optimizer = make_optimizer(module, neural(optimizer="adam", learning_rate=0.1, weight_decay=0.5))
    for p in module.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    torch.testing.assert_close(module[0].weight.detach(), w - 0.1 * torch.sign(w))


def test_adamw_decay_is_decoupled():
    """With a zero gradient AdamW still shrinks every weight by lr * weight_decay, outside the Adam step."""
    module = mlp(5, 1)
    w, b = module[0].weight.detach().clone(), module[0].bias.detach().clone()
    optimizer = make_optimizer(module, neural(optimizer="adamw", learning_rate=0.1, weight_decay=0.5))
    for p in module.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    torch.testing.assert_close(module[0].weight.detach(), w * (1 - 0.1 * 0.5))
    torch.testing.assert_close(module[0].bias.detach(), b * (1 - 0.1 * 0.5))


def _schedule(steps_per_epoch: int = 4, **settings) -> LrSchedule:
    config = neural(learning_rate=0.1, **settings)
    return LrSchedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), config, steps_per_epoch)


def _lrs(schedule: LrSchedule, steps: int) -> list[float]:
    return [schedule.apply(s) for s in range(steps)]


def test_step_schedule_decays_every_step_size_epochs():
    lrs = _lrs(_schedule(scheduler="step", step_size=2, gamma=0.5, epochs=6), 24)
    assert lrs[::4] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert lrs[4:8] == pytest.approx([0.1] * 4)  # constant within an epoch


def test_cosine_schedule_matches_torch_per_epoch():
    epochs = 7
    lrs = _lrs(_schedule(scheduler="cosine", epochs=epochs), 4 * epochs)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    expected = []
    for _ in range(epochs):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    assert lrs[::4] == pytest.approx(expected)


def test_onecycle_matches_torch_per_step():
    epochs, per_epoch = 5, 7
    lrs = _lrs(_schedule(per_epoch, scheduler="onecycle", epochs=epochs), epochs * per_epoch)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    reference = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=epochs * per_epoch, cycle_momentum=False)
    expected = []
    for _ in range(epochs * per_epoch):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    assert lrs == pytest.approx(expected)
    assert lrs[0] == pytest.approx(0.1 / 25) and max(lrs) == pytest.approx(0.1, rel=1e-2) and lrs[-1] < 1e-5


def test_plateau_matches_torch_reduce_on_plateau():
    values = [1.0, 0.9, 0.9, 0.95, 0.91, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85]
    schedule = _schedule(scheduler="plateau", gamma=0.5)
    schedule.patience = 2
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2, threshold=0.0)
    for epoch, value in enumerate(values, start=1):
        schedule.end_epoch(epoch, value)
        reference.step(value)
        assert schedule.apply(0) == pytest.approx(optimizer.param_groups[0]["lr"]), epoch
    assert schedule.scale == 0.125


def test_warmup_is_linear_per_step_then_hands_over_to_the_schedule():
    lrs = _lrs(_schedule(scheduler="step", warmup_epochs=2, step_size=1, gamma=0.5, epochs=5), 20)
    assert lrs[:8] == pytest.approx([0.1 * (i + 1) / 8 for i in range(8)])
    assert lrs[8::4] == pytest.approx([0.1, 0.05, 0.025])  # epochs after warm-up counted from 0


def test_schedule_is_driven_by_optimiser_steps_in_training():
    """48 rows in batches of 8, accumulated 2 by 2: 3 optimiser steps per epoch; history logs each epoch's last lr."""
    config = neural(epochs=4, batch_size=8, grad_accumulation=2, learning_rate=0.1, optimizer="sgd",
                    scheduler="step", step_size=1, gamma=0.5, warmup_epochs=1)
    state = Trainer(mlp(5, 1), config, task="regression").fit(_data(48))
    assert state.global_step == 12
    assert [row["lr"] for row in state.history] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_plateau_reads_the_monitored_value_in_training():
    """A metric that never improves; early stopping patience 4 gives the plateau a patience of 4 // 2 = 2:
    the rate halves after epoch 4 (three epochs without improvement) and early stopping ends epoch 5."""
    config = neural(epochs=10, learning_rate=0.1, optimizer="sgd", scheduler="plateau", gamma=0.5,
                    early_stopping={"monitor": "val_metric", "patience": 4})
    state = Trainer(mlp(5, 1), config, task="regression", metric=lambda o, t: 0.5).fit(_data(), _data(16))
    assert [row["lr"] for row in state.history] == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05])
    assert state.stopped_early and state.best_epoch == 1


def test_plateau_patience_overrides_half_the_early_stopping_patience():
    """plateau_patience 1 with early stopping patience 4: the rate halves one epoch sooner than with the
    default (half of 4 = 2), and again two epochs later, before early stopping ends epoch 5."""
    config = neural(epochs=10, learning_rate=0.1, optimizer="sgd", scheduler="plateau", gamma=0.5, plateau_patience=1,
                    early_stopping={"monitor": "val_metric", "patience": 4})
    state = Trainer(mlp(5, 1), config, task="regression", metric=lambda o, t: 0.5).fit(_data(), _data(16))
    assert [row["lr"] for row in state.history] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])
    assert state.stopped_early
