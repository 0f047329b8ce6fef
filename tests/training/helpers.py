"""Helpers shared by the trainer tests (imported as `training.helpers`; tests/ is on sys.path)."""

from __future__ import annotations

import torch

from forgeml.spec import NeuralSpec


def neural(**settings) -> NeuralSpec:
    """A NeuralSpec for tests: on CPU (where runs are bitwise reproducible), without early stopping
    or weight decay unless asked for."""
    return NeuralSpec(**{"early_stopping": None, "weight_decay": 0.0, "device": "cpu", **settings})


def mlp(n_in: int, n_out: int, *, hidden: int = 16, dropout: float = 0.0, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(hidden, n_out)
    )


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{key} differs (max |diff| {(wa[key] - wb[key]).abs().max():.3g})"


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float((outputs.argmax(1) == targets).float().mean())


def regression_data(rows: int = 64, features: int = 5, seed: int = 0):
    """A linear target with noise.  # X (rows, features), y (rows,)"""
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(seed)
    X = torch.randn(rows, features, generator=g)
    return TensorDataset(X, X @ torch.linspace(-1, 1, features) + 0.1 * torch.randn(rows, generator=g))


def ddp_fit(rank: int, world_size: int, batch_size: int, epochs: int, checkpoint_dir=None) -> dict:
    """Train a small MLP with SGD on this rank's shard (run by forgeml.training.distributed.launch)."""
    from torch.nn.parallel import DistributedDataParallel

    from forgeml.training.trainer import Trainer

    events = []
    config = neural(epochs=epochs, batch_size=batch_size, optimizer="sgd", momentum=0.9, learning_rate=0.05,
                    checkpoint_every=1 if checkpoint_dir else 0)
    trainer = Trainer(mlp(5, 1, hidden=32, seed=rank), config, task="regression", seed=3, checkpoint_dir=checkpoint_dir,
                      on_event=lambda name, payload: events.append(name))
    state = trainer.fit(regression_data(), regression_data(20, seed=1))
    return {"weights": weights(trainer.module), "history": state.history, "events": events,
            "ddp": isinstance(trainer._model, DistributedDataParallel), "batches": state.batches}


def fails_on_rank_1(rank: int, world_size: int) -> None:
    if rank == 1:
        raise ValueError("rank one broke")
