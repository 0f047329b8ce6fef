"""Callbacks: one file each; see base.py for the protocol (events in, decisions out)."""

from forgeml.training.callbacks.base import (
    Callback,
    Decision,
    Interrupt,
    NewBest,
    RestoreBest,
    SaveCheckpoint,
    Stop,
)
from forgeml.training.callbacks.checkpoint import PeriodicCheckpoint
from forgeml.training.callbacks.early_stopping import EarlyStopping
from forgeml.training.callbacks.interrupt import SignalInterrupt
from forgeml.training.callbacks.metrics_logger import MetricsLogger
from forgeml.training.callbacks.progress import Progress

__all__ = [
    "Callback", "Decision", "EarlyStopping", "Interrupt", "MetricsLogger", "NewBest", "PeriodicCheckpoint",
    "Progress", "RestoreBest", "SaveCheckpoint", "SignalInterrupt", "Stop",
]
