"""The loss by task and NeuralSpec.loss, and the L1 penalty."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from forgeml.errors import SpecError

TASKS = ("classification", "regression", "reconstruction")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_loss(task: str, loss: str) -> str:
    """The loss name for `task`: auto -> cross_entropy (classification) or mse; mismatches raise SpecError."""
    if task not in TASKS:
        raise SpecError(f"task '{task}' is not known to the trainer; use {', '.join(TASKS)}")
    if loss == "auto":
        return "cross_entropy" if task == "classification" else "mse"
    if loss in ("cross_entropy", "bce") and task != "classification":
        raise SpecError(f"neural.loss '{loss}' needs a classification task (got {task}); use mse, mae or huber")
    if loss not in ("cross_entropy", "bce", "mse", "mae", "huber"):
        raise SpecError(f"neural.loss '{loss}' is not known; use auto, cross_entropy, bce, mse, mae or huber")
    return loss


def _same_shape(outputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squeeze a trailing 1 so (B, 1) outputs meet (B,) targets (and the reverse)."""
    if outputs.shape != target.shape:
        if outputs.dim() == target.dim() + 1 and outputs.shape[-1] == 1:
            outputs = outputs.squeeze(-1)
        elif target.dim() == outputs.dim() + 1 and target.shape[-1] == 1:
            target = target.squeeze(-1)
        if outputs.shape != target.shape:
            raise ValueError(f"outputs of shape {tuple(outputs.shape)} do not match targets of shape {tuple(target.shape)}")
    return outputs, (target if target.dtype == outputs.dtype else target.to(outputs.dtype))


def make_loss(name: str, *, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0) -> LossFn:
    """loss(outputs, target) -> mean loss (0-d).

    cross_entropy: outputs (B, K) logits, target (B,) class indices; bce: outputs (B,) or (B, 1)
    logits, target (B,) in {0, 1} (class_weights of length 2 weight each row by its class);
    mse / mae / huber: outputs and target of the same shape, a trailing 1 squeezed.
    """
    if name == "cross_entropy":
        def cross_entropy(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            weight = None if class_weights is None else class_weights.to(outputs.device, outputs.dtype)
            return F.cross_entropy(outputs, target.long(), weight=weight, label_smoothing=label_smoothing)
        return cross_entropy
    if name == "bce":
        def bce(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            outputs, target = _same_shape(outputs.reshape(-1), target.reshape(-1))
            if class_weights is None:
                return F.binary_cross_entropy_with_logits(outputs, target)
            rows = class_weights.to(outputs.device, outputs.dtype)[target.long()]  # (B,)
            return F.binary_cross_entropy_with_logits(outputs, target, weight=rows, reduction="sum") / rows.sum()
        return bce
    plain = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}[name]

    def regression(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return plain(*_same_shape(outputs, target))
    return regression


def weight_matrices(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters with two or more dimensions (linear / conv / embedding weights), not biases or norms."""
    return [p for p in module.parameters() if p.requires_grad and p.dim() >= 2]


def l1_penalty(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """sum |w| over the given parameters.  # 0-d"""
    return torch.stack([p.abs().sum() for p in params]).sum()
