from __future__ import annotations

import hashlib
import json
import os
import signal

import pytest
import torch

from forgeml.errors import IntegrityError, Interrupted, SpecError
from forgeml.training.callbacks import Callback
from forgeml.training.checkpoint import META, STATE, WEIGHTS, read_meta
from forgeml.training.trainer import Trainer, TrainingInterrupted
from training.helpers import accuracy, assert_same_weights, mlp, neural


def _config(**settings):
    """Everything that carries state across epochs: momentum, a per-step schedule with warm-up,
    accumulation, dropout (in the network), shuffling and early stopping's best weights."""
    return neural(**{"epochs": 6, "batch_size": 16, "learning_rate": 0.05, "optimizer": "sgd", "momentum": 0.9,
                     "scheduler": "onecycle", "warmup_epochs": 1, "grad_accumulation": 2,
                     "early_stopping": {"patience": 3}, **settings})


def _trainer(init_seed: int = 0, **kwargs) -> Trainer:
    return Trainer(mlp(30, 2, dropout=0.2, seed=init_seed), _config(**kwargs.pop("settings", {})),
                   task="classification", metric=accuracy, seed=5, **kwargs)


class SignalAt(Callback):
    """Send SIGINT to this process after epoch `epoch` (1-based), or after batch `batch` of it."""

    def __init__(self, epoch: int, batch: int | None = None):
        self.epoch, self.batch = epoch, batch

    def after_batch(self, state):
        if self.batch is not None and state.epoch + 1 == self.epoch and state.batch == self.batch:
            os.kill(os.getpid(), signal.SIGINT)

    def after_epoch(self, state):
        if self.batch is None and state.epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


def _without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.fixture(scope="module")
def uninterrupted(cancer):
    trainer = _trainer()
    trainer.fit(*cancer)
    return trainer


@pytest.mark.parametrize(("epoch", "batch", "where"), [
    (2, None, "after epoch 2 of 6"),
    (3, 3, "in epoch 3 of 6 after batch 4 of 29"),  # batch 3 is mid-group: the group of 2 finishes first
])
def test_interrupted_and_resumed_run_ends_with_exactly_the_same_weights(cancer, uninterrupted, tmp_path, epoch, batch, where):
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as info:
        _trainer(checkpoint_dir=tmp_path, callbacks=[SignalAt(epoch, batch)]).fit(*cancer)
    error = info.value
    assert isinstance(error, Interrupted) and error.exit_code == 130 and error.checkpoint_path == tmp_path
    assert str(error) == (f"training interrupted by SIGINT {where}; checkpoint written to {tmp_path}; "
                          f"resume with fit(..., resume_from='{tmp_path}')")
    assert signal.getsignal(signal.SIGINT) is previous
    assert read_meta(tmp_path)["epoch"] == (epoch if batch is None else epoch - 1)

    resumed = _trainer(init_seed=99)  # other initial weights: everything must come from the checkpoint
    state = resumed.fit(*cancer, resume_from=tmp_path)
    assert_same_weights(resumed.module, uninterrupted.module)
    expected = uninterrupted.state
    assert _without_seconds(state.history) == _without_seconds(expected.history)
    assert (state.epoch, state.global_step, state.best_epoch, state.best_score, state.stop_reason) == (
        expected.epoch, expected.global_step, expected.best_epoch, expected.best_score, expected.stop_reason)


def test_interrupt_without_a_checkpoint_dir_writes_to_a_temporary_one(cancer, uninterrupted):
    with pytest.raises(TrainingInterrupted, match="checkpoint written to .*forgeml-checkpoint-") as info:
        _trainer(callbacks=[SignalAt(1)]).fit(*cancer)
    resumed = _trainer()
    resumed.fit(*cancer, resume_from=info.value.checkpoint_path)
    assert_same_weights(resumed.module, uninterrupted.module)


def test_sigterm_is_handled_like_sigint(cancer, tmp_path):
    class TermAt(Callback):
        def after_epoch(self, state):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted, match="^training interrupted by SIGTERM after epoch 1 of 6"):
        _trainer(checkpoint_dir=tmp_path, callbacks=[TermAt()]).fit(*cancer)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.fixture
def checkpoint(cancer, tmp_path):
    _trainer(checkpoint_dir=tmp_path, settings={"epochs": 2, "checkpoint_every": 1}).fit(*cancer)
    return tmp_path


def test_checkpoint_describes_itself(checkpoint):
    assert sorted(p.name for p in checkpoint.iterdir()) == sorted([WEIGHTS, STATE, META])
    meta = json.loads((checkpoint / META).read_text())
    assert meta["format"] == "forgeml-checkpoint" and meta["version"] == 1
    assert meta["epoch"] == 2 and meta["task"] == "classification" and meta["seed"] == 5
    assert meta["module_class"] == "torch.nn.modules.container.Sequential"
    assert meta["config"]["scheduler"] == "onecycle" and meta["config"]["early_stopping"]["patience"] == 3
    for name in (WEIGHTS, STATE):
        assert meta["files"][name] == hashlib.sha256((checkpoint / name).read_bytes()).hexdigest()
    payload = torch.load(checkpoint / STATE, weights_only=True)  # tensors and plain values only
    assert {"state", "position", "optimizer", "schedule", "scaler", "rng", "best_weights"} <= set(payload)
    assert payload["state"]["epoch"] == 2 and len(payload["state"]["history"]) == 2
    assert set(payload["rng"]) == {"python", "numpy", "torch", "cuda"}


def test_a_modified_file_fails_its_hash_check(checkpoint):
    data = bytearray((checkpoint / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (checkpoint / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"^checkpoint file 'model.safetensors' in .* does not match its recorded sha256"):
        _trainer().fit(torch.utils.data.TensorDataset(torch.zeros(4, 30), torch.zeros(4, dtype=torch.long)),
                       resume_from=checkpoint)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_a_pickle_with_code_is_refused_even_with_a_matching_hash(checkpoint, cancer):
    torch.save({"state": _Exploit()}, checkpoint / STATE)
    meta = json.loads((checkpoint / META).read_text())
    meta["files"][STATE] = hashlib.sha256((checkpoint / STATE).read_bytes()).hexdigest()
    (checkpoint / META).write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match="holds more than tensors and plain values"):
        _trainer().fit(*cancer, resume_from=checkpoint)


def test_resume_errors_name_the_problem(checkpoint, cancer, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(SpecError, match=r"is not a forgeml checkpoint \(no checkpoint.json\)"):
        _trainer().fit(*cancer, resume_from=empty)
    other = Trainer(torch.nn.Linear(30, 2), _config(), task="classification")
    with pytest.raises(SpecError, match="holds a torch.nn.modules.container.Sequential, not a torch.nn.modules.linear.Linear"):
        other.fit(*cancer, resume_from=checkpoint)
    regression = Trainer(mlp(30, 2), _config(), task="regression")
    with pytest.raises(SpecError, match="was written for task classification, not regression"):
        regression.fit(*cancer, resume_from=checkpoint)
