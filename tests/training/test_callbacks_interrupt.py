from __future__ import annotations

import os
import signal
import threading

import pytest
import torch
from torch.utils.data import TensorDataset

from forgeml.training.callbacks import Callback, Interrupt, SignalInterrupt
from forgeml.training.state import TrainState
from forgeml.training.trainer import Trainer
from training.helpers import mlp, neural


def _data():
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(32, 3, generator=g), torch.randn(32, generator=g))


def test_handlers_are_installed_for_the_fit_and_restored_after():
    seen = []

    class Look(Callback):
        def after_epoch(self, state):
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    Trainer(mlp(3, 1), neural(epochs=1), task="regression", callbacks=[Look()]).fit(_data())
    assert getattr(seen[0], "__self__", None).__class__ is SignalInterrupt
    assert signal.getsignal(signal.SIGINT) is before


def test_first_signal_sets_a_flag_second_raises_keyboard_interrupt():
    callback = SignalInterrupt()
    before = signal.getsignal(signal.SIGINT)
    callback.before_fit(TrainState())
    os.kill(os.getpid(), signal.SIGINT)
    assert callback.after_batch(TrainState()) == Interrupt("SIGINT")
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_the_main_thread_no_handler_is_installed():
    before, result = signal.getsignal(signal.SIGINT), {}

    def work():
        result["state"] = Trainer(mlp(3, 1), neural(epochs=2), task="regression").fit(_data())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert result["state"].epoch == 2 and signal.getsignal(signal.SIGINT) is before
