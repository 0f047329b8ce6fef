"""The PyTorch trainer: one loop, callbacks at named events, resumable checkpoints, DDP.

    from forgeml.training.trainer import Trainer
    state = Trainer(module, spec.neural, task="classification").fit(train_ds, val_ds)

Importing this package does not import torch; the names below load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Trainer", "TrainState", "TrainingInterrupted", "launch"]

_LAZY = {
    "Trainer": "forgeml.training.trainer",
    "TrainState": "forgeml.training.state",
    "TrainingInterrupted": "forgeml.training.state",
    "launch": "forgeml.training.distributed",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'forgeml.training' has no attribute '{name}'")
