from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from torch.utils.data import Dataset, Subset, TensorDataset

from forgeml.errors import DataError, SpecError
from forgeml.training.trainer import Trainer, TrainState
from training.helpers import accuracy, assert_same_weights, mlp, neural


def test_mlp_learns_breast_cancer(cancer):
    train, val = cancer
    trainer = Trainer(mlp(30, 2, dropout=0.1), neural(epochs=15, batch_size=32, learning_rate=1e-2),
                      task="classification", metric=accuracy)
    state = trainer.fit(train, val)
    assert isinstance(state, TrainState) and state.epoch == 15 and state.global_step == 15 * 15
    assert [row["epoch"] for row in state.history] == list(range(1, 16))
    assert set(state.history[0]) == {"epoch", "train_loss", "val_loss", "val_metric", "lr", "seconds"}
    assert state.history[-1]["train_loss"] < state.history[0]["train_loss"]
    logits = trainer.predict(val)
    assert logits.shape == (len(val), 2) and logits.device.type == "cpu"
    assert accuracy(logits, val.tensors[1]) >= 0.95
    assert state.history[-1]["val_metric"] == pytest.approx(accuracy(logits, val.tensors[1]))


def test_mlp_learns_diabetes(diabetes):
    train, val = diabetes
    trainer = Trainer(mlp(10, 1, hidden=32), neural(epochs=30, batch_size=32, learning_rate=3e-3), task="regression")
    state = trainer.fit(train, val)
    assert set(state.history[0]) == {"epoch", "train_loss", "val_loss", "lr", "seconds"}
    predicted = trainer.predict(val).squeeze(1)
    ridge = Ridge().fit(train.tensors[0], train.tensors[1]).predict(val.tensors[0])  # r2 0.34 on this split
    assert r2_score(val.tensors[1], predicted) > max(0.3, r2_score(val.tensors[1], ridge) - 0.02)
    # val_loss is the MSE over the whole validation set
    assert state.history[-1]["val_loss"] == pytest.approx(F.mse_loss(predicted, val.tensors[1]).item(), rel=1e-5)


def _fit_seeded(data, seed: int, **settings) -> torch.nn.Module:
    config = neural(epochs=3, batch_size=16, learning_rate=1e-2, scheduler="onecycle", **settings)
    trainer = Trainer(mlp(30, 2, dropout=0.3), config, task="classification", seed=seed)
    trainer.fit(*data)
    return trainer.module


def test_same_seed_gives_bitwise_identical_weights(cancer):
    assert_same_weights(_fit_seeded(cancer, 7), _fit_seeded(cancer, 7))
    other = _fit_seeded(cancer, 8)  # a different seed shuffles and drops out differently
    assert not torch.equal(other[0].weight, _fit_seeded(cancer, 7)[0].weight)


class RowDataset(Dataset):
    """The same rows as a TensorDataset, served one item at a time (the DataLoader's default path)."""

    def __init__(self, data: TensorDataset):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return self.data[i]


def test_row_datasets_and_subsets_train_exactly_like_tensor_datasets(cancer):
    train, val = cancer
    fast = _fit_seeded((train, val), 3)
    slow = _fit_seeded((RowDataset(train), RowDataset(val)), 3)
    assert_same_weights(fast, slow)
    whole = TensorDataset(torch.cat([train.tensors[0], val.tensors[0]]), torch.cat([train.tensors[1], val.tensors[1]]))
    subset = Subset(whole, range(len(train)))  # gathered through the Subset's indices
    assert_same_weights(fast, _fit_seeded((subset, val), 3))


class TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(20, 2), torch.nn.Linear(10, 2)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:  # (B, 20), (B, 10) -> (B, 2)
        return self.a(x1) + self.b(x2)


class PairDataset(Dataset):
    def __init__(self, X: torch.Tensor, y: torch.Tensor):
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return (self.X[i, :20], self.X[i, 20:]), self.y[i]


def test_tuple_inputs_are_passed_as_separate_arguments(cancer):
    train, val = cancer
    X, y = train.tensors
    config = neural(epochs=2, batch_size=32, learning_rate=1e-2)
    as_pairs = Trainer(TwoInputs(), config, task="classification")
    as_pairs.fit(PairDataset(X, y))
    as_columns = Trainer(TwoInputs(), config, task="classification")
    as_columns.fit(TensorDataset(X[:, :20], X[:, 20:], y))  # (x1, x2, target) reads the same
    assert_same_weights(as_pairs.module, as_columns.module)
    assert as_pairs.predict(PairDataset(*val.tensors)).shape == (len(val), 2)


def test_predict_keeps_dataset_order_and_accepts_inputs_only(cancer):
    train, val = cancer
    trainer = Trainer(mlp(30, 2), neural(epochs=1), task="classification")
    trainer.fit(train)
    expected = trainer.module(val.tensors[0]).detach()
    torch.testing.assert_close(trainer.predict(val, batch_size=7), expected)
    torch.testing.assert_close(trainer.predict(TensorDataset(val.tensors[0])), expected)


def test_without_validation_data_history_has_train_loss_and_early_stopping_watches_it(cancer):
    train, _ = cancer
    config = neural(epochs=3, early_stopping={"monitor": "val_loss", "patience": 5})
    state = Trainer(mlp(30, 2), config, task="classification", metric=accuracy).fit(train)
    assert set(state.history[0]) == {"epoch", "train_loss", "lr", "seconds"}
    assert state.monitor == "train_loss" and state.best_epoch == 3


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_regression_losses_accept_a_trailing_1(diabetes, loss):
    train, val = diabetes
    trainer = Trainer(mlp(10, 1), neural(epochs=2, loss=loss, learning_rate=1e-2), task="regression")
    state = trainer.fit(train, val)  # outputs (B, 1), targets (B,)
    outputs, target = trainer.predict(val).squeeze(1), val.tensors[1]
    fn = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}[loss]
    assert state.history[-1]["val_loss"] == pytest.approx(fn(outputs, target).item(), rel=1e-5)


def test_bce_with_one_logit_and_class_weights(cancer):
    train, val = cancer
    weights = torch.tensor([3.0, 1.0])
    trainer = Trainer(mlp(30, 1), neural(epochs=3, loss="bce", learning_rate=1e-2), task="classification",
                      class_weights=weights)
    state = trainer.fit(train, val)
    logits, y = trainer.predict(val).squeeze(1), val.tensors[1].float()
    rows = weights[val.tensors[1]]
    expected = (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * rows).sum() / rows.sum()
    assert state.history[-1]["val_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert ((logits > 0).long() == val.tensors[1]).float().mean() > 0.9


def test_cross_entropy_uses_class_weights_and_label_smoothing(cancer):
    train, val = cancer
    weights = torch.tensor([2.0, 0.5])
    trainer = Trainer(mlp(30, 2), neural(epochs=1, label_smoothing=0.1), task="classification", class_weights=weights)
    state = trainer.fit(train, val)
    expected = F.cross_entropy(trainer.predict(val), val.tensors[1], weight=weights, label_smoothing=0.1)
    assert state.history[-1]["val_loss"] == pytest.approx(expected.item(), rel=1e-4)


def test_reconstruction_learns_to_copy_its_input(cancer):
    X = cancer[0].tensors[0]
    torch.manual_seed(0)
    autoencoder = torch.nn.Sequential(torch.nn.Linear(30, 12), torch.nn.Tanh(), torch.nn.Linear(12, 30))
    state = Trainer(autoencoder, neural(epochs=20, learning_rate=1e-2, batch_size=32), task="reconstruction").fit(
        TensorDataset(X, X))
    assert state.history[-1]["train_loss"] < 0.5 * state.history[0]["train_loss"]


def test_l1_penalty_shrinks_weight_matrices_only(cancer):
    train, _ = cancer
    plain = Trainer(mlp(30, 2), neural(epochs=3, learning_rate=1e-2), task="classification")
    plain.fit(train)
    sparse = Trainer(mlp(30, 2), neural(epochs=3, learning_rate=1e-2, l1=1e-2), task="classification")
    sparse.fit(train)
    assert sparse.module[0].weight.abs().sum() < 0.7 * plain.module[0].weight.abs().sum()
    # the penalty is not in the logged loss: that stays the data loss
    assert sparse.state.history[-1]["train_loss"] < 1.0


def test_gradient_accumulation_equals_one_big_batch(cancer):
    """4 batches of 8 accumulated == 1 batch of 32 with SGD (same order: the permutation depends on seed and
    epoch only); 455 rows leave a last group of one batch of 7, which still steps. Float tolerance: the
    sums are taken in a different order."""
    train, _ = cancer
    big = Trainer(mlp(30, 2), neural(epochs=2, batch_size=32, optimizer="sgd", learning_rate=0.1), task="classification")
    big.fit(train)
    small = Trainer(mlp(30, 2), neural(epochs=2, batch_size=8, grad_accumulation=4, optimizer="sgd", learning_rate=0.1),
                    task="classification")
    small.fit(train)
    assert big.state.global_step == small.state.global_step == 2 * 15
    for a, b in zip(big.module.parameters(), small.module.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert small.state.history[-1]["train_loss"] == pytest.approx(big.state.history[-1]["train_loss"], rel=1e-5)


def test_gradient_clipping_bounds_the_update(diabetes):
    """One SGD step with lr 1 and no momentum moves the weights by exactly the clipped gradient."""
    X, y = diabetes[0].tensors
    data = TensorDataset(X[:64], y[:64] * 1000)  # a huge loss, a huge gradient
    moves = {}
    for clip in (None, 0.5):
        module = mlp(10, 1)
        before = torch.cat([p.detach().flatten().clone() for p in module.parameters()])
        config = neural(epochs=1, batch_size=64, optimizer="sgd", momentum=0.0, learning_rate=1.0, grad_clip=clip)
        Trainer(module, config, task="regression").fit(data)
        moves[clip] = (torch.cat([p.detach().flatten() for p in module.parameters()]) - before).norm().item()
    assert moves[None] > 100
    assert moves[0.5] == pytest.approx(0.5, rel=1e-4)


def test_bf16_on_cpu_runs_when_asked_and_auto_stays_full_precision(cancer):
    train, val = cancer
    assert Trainer(mlp(30, 2), neural(), task="classification").amp_dtype is None
    trainer = Trainer(mlp(30, 2), neural(epochs=3, mixed_precision="bf16", learning_rate=1e-2), task="classification",
                      metric=accuracy)
    assert trainer.amp_dtype is torch.bfloat16
    state = trainer.fit(train, val)
    assert state.history[-1]["val_metric"] > 0.9
    assert trainer.predict(val).dtype == torch.float32


@pytest.mark.parametrize(
    ("settings", "task", "message"),
    [
        ({}, "ranking", "task 'ranking' is not known to the trainer; use classification, regression, reconstruction"),
        ({"loss": "cross_entropy"}, "regression", "neural.loss 'cross_entropy' needs a classification task (got regression)"),
        ({"mixed_precision": "fp16", "device": "cpu"}, "classification", "neural.mixed_precision 'fp16' needs a CUDA device"),
        ({"optimizer": "sgd", "momentum": 0.0, "nesterov": True}, "classification", "neural.nesterov needs momentum > 0"),
        ({"early_stopping": {"monitor": "val_acc"}}, "classification",
         "early_stopping.monitor 'val_acc' is not logged; logged: train_loss, val_loss, val_metric"),
    ],
)
def test_bad_settings_raise_one_line_spec_errors(cancer, settings, task, message):
    train, val = cancer
    with pytest.raises(SpecError) as info:
        Trainer(mlp(30, 2), neural(epochs=1, **settings), task=task, metric=accuracy).fit(train, val)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["auto", "fp16", "off"])
def test_cuda_training_with_mixed_precision(cancer, precision):
    train, val = cancer
    trainer = Trainer(mlp(30, 2), neural(epochs=10, batch_size=32, learning_rate=1e-2, device="cuda",
                                         mixed_precision=precision), task="classification", metric=accuracy)
    assert trainer.device.type == "cuda"
    assert (trainer.amp_dtype is torch.float16) == (precision == "fp16")
    state = trainer.fit(train, val)
    assert (trainer._scaler is not None) == (precision == "fp16")
    assert state.history[-1]["val_metric"] > 0.9
    logits = trainer.predict(val)
    assert logits.device.type == "cpu" and logits.dtype == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_a_spec_error():
    with pytest.raises(SpecError, match=r"^neural.device 'cuda:1' is not available on this machine"):
        Trainer(mlp(3, 1), neural(device="cuda:1"), task="regression")


def test_auto_device_and_empty_data():
    trainer = Trainer(mlp(3, 1), neural(device="auto"), task="regression")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert trainer.device.type == expected
    with pytest.raises(DataError, match="training data is empty"):
        trainer.fit(TensorDataset(torch.zeros(0, 3), torch.zeros(0)))


def test_fit_gives_the_global_random_streams_back(cancer):
    import random

    import numpy as np

    trainer = Trainer(mlp(30, 2, dropout=0.5), neural(epochs=1), task="classification", seed=123)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = random.random(), np.random.rand(), torch.rand(1)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    trainer.fit(cancer[0])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
