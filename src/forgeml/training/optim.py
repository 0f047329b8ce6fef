"""Optimisers and the learning-rate schedule from NeuralSpec.

The schedule is one small object that sets the rate before every optimiser step from the step
number alone (plus a plateau factor), so warm-up composes with every schedule and a resumed run
continues on exactly the same curve.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from forgeml.errors import SpecError
from forgeml.spec import NeuralSpec
from forgeml.training.callbacks.early_stopping import improves

ONECYCLE_DIV, ONECYCLE_FINAL_DIV, ONECYCLE_PCT = 25.0, 1e4, 0.3  # torch.optim.lr_scheduler.OneCycleLR's defaults


def make_optimizer(module: torch.nn.Module, config: NeuralSpec) -> torch.optim.Optimizer:
    """sgd (momentum, nesterov) | adam | adamw | rmsprop (momentum) at config.learning_rate, with
    config.weight_decay passed as is: decoupled from the gradient by adamw, added as L2 by the others.

    One parameter group: splitting off biases and norms (no decay) doubles the optimiser's per-step
    overhead, a few percent of a small network's step, for a difference that default decays do not show.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise SpecError("the network has no trainable parameters; nothing to optimise")
    lr, decay = config.learning_rate, config.weight_decay
    if config.optimizer == "sgd":
        if config.nesterov and config.momentum == 0:
            raise SpecError("neural.nesterov needs momentum > 0 (got momentum=0); set momentum, e.g. 0.9, or nesterov: false")
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=decay)
    raise SpecError(f"neural.optimizer '{config.optimizer}' is not known; use sgd, adam, adamw or rmsprop")


def one_cycle_factor(step: int, total: int) -> float:
    """OneCycleLR's cosine curve (no momentum cycling) as a fraction of max_lr, for step in [0, total)."""
    start, peak, end = 1 / ONECYCLE_DIV, 1.0, 1 / (ONECYCLE_DIV * ONECYCLE_FINAL_DIV)
    up_end = float(ONECYCLE_PCT * total) - 1
    if step <= up_end:
        lo, hi, pct = start, peak, step / up_end if up_end > 0 else 1.0
    else:
        lo, hi, pct = peak, end, (step - up_end) / max(total - 1 - up_end, 1e-12)
    pct = min(pct, 1.0)
    return hi + (lo - hi) / 2 * (math.cos(math.pi * pct) + 1)


class LrSchedule:
    """Sets lr = learning_rate * warm-up/schedule factor(step) * plateau factor before each step.

    warm-up: linear from lr/W to lr over the first W = warmup_epochs * steps_per_epoch steps.
    Then over the remaining epochs: step (x gamma every step_size epochs), cosine (per epoch,
    from lr towards 0 over the remaining epochs), onecycle (per step, peak = learning_rate),
    plateau (x gamma when the monitored value has not improved for `patience` epochs).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: NeuralSpec, steps_per_epoch: int, *,
                 mode: str = "min", patience: int = 5):
        self.optimizer, self.config = optimizer, config
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.warmup = config.warmup_epochs * self.steps_per_epoch
        self.total = config.epochs * self.steps_per_epoch
        self.mode, self.patience = mode, patience
        self.scale, self.best, self.bad = 1.0, None, 0

    def factor(self, step: int) -> float:
        """The schedule's multiplier of learning_rate at optimiser step `step` (0-based)."""
        cfg = self.config
        if step < self.warmup:
            return (step + 1) / self.warmup
        step -= self.warmup
        epoch = step // self.steps_per_epoch
        if cfg.scheduler == "step":
            return cfg.gamma ** (epoch // cfg.step_size)
        if cfg.scheduler == "cosine":
            epochs = max(cfg.epochs - cfg.warmup_epochs, 1)
            return 0.5 * (1 + math.cos(math.pi * min(epoch, epochs) / epochs))
        if cfg.scheduler == "onecycle":
            return one_cycle_factor(step, max(self.total - self.warmup, 1))
        return 1.0

    def apply(self, step: int) -> float:
        lr = self.config.learning_rate * self.factor(step) * self.scale
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def end_epoch(self, epoch: int, value: float | None) -> None:
        """After `epoch` epochs: the plateau schedule reads the monitored value (warm-up epochs excluded)."""
        if self.config.scheduler != "plateau" or epoch <= self.config.warmup_epochs:
            return
        if improves(value, self.best, self.mode, 0.0):
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad > self.patience:
            self.scale *= self.config.gamma
            self.bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.best, self.bad = state["scale"], state["best"], state["bad"]
