"""An MLP autoencoder as a scikit-learn transformer: fit learns to rebuild rows through a bottleneck,
transform gives the bottleneck codes (for clustering, visualisation or as features), and
reconstruction_error scores how unusual each row is (for anomaly detection)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils._param_validation import StrOptions

from forgeml.models.neural_base import (
    ACTIVATIONS,
    POSITIVE,
    NeuralParameterError,
    TorchEstimatorMixin,
    jsonable_list,
    spec_constraints,
)


class AutoencoderTransformer(TorchEstimatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Rows (N, F) numeric -> codes (N, bottleneck). Inputs are standardised on the training rows
    (missing values at the mean). Training parameters: every NeuralSpec field (None: its default; loss
    mse, mae or huber), random_state (None: 0). Learned: module_, history_, best_epoch_, n_features_in_."""

    _parameter_constraints: ClassVar[dict] = {
        "hidden_sizes": [list, tuple],
        "bottleneck": [POSITIVE],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "batch_norm": ["boolean"],
        **spec_constraints(),
    }
    _int_lists = ("hidden_sizes",)

    def __init__(
        self,
        hidden_sizes: tuple[int, ...] = (64,),
        bottleneck: int = 8,
        *,
        activation: str = "relu",
        batch_norm: bool = False,
        epochs: int | None = None,
        batch_size: int | None = None,
        optimizer: str | None = None,
        learning_rate: float | None = None,
        weight_decay: float | None = None,
        l1: float | None = None,
        momentum: float | None = None,
        nesterov: bool | None = None,
        scheduler: str | None = None,
        warmup_epochs: int | None = None,
        step_size: int | None = None,
        gamma: float | None = None,
        plateau_patience: int | None = None,
        loss: str | None = None,
        label_smoothing: float | None = None,
        class_weight: str | None = None,
        dropout: float | None = None,
        early_stopping: bool | dict | None = True,
        validation_fraction: float | None = None,
        grad_clip: float | None = None,
        grad_accumulation: int | None = None,
        mixed_precision: str | None = None,
        device: str | None = None,
        checkpoint_every: int | None = None,
        max_time: float | None = None,
        workers: int | None = None,
        random_state: int | None = None,
    ):
        self.hidden_sizes = hidden_sizes
        self.bottleneck = bottleneck
        self.activation = activation
        self.batch_norm = batch_norm
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.l1 = l1
        self.momentum = momentum
        self.nesterov = nesterov
        self.scheduler = scheduler
        self.warmup_epochs = warmup_epochs
        self.step_size = step_size
        self.gamma = gamma
        self.plateau_patience = plateau_patience
        self.loss = loss
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight
        self.dropout = dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.grad_clip = grad_clip
        self.grad_accumulation = grad_accumulation
        self.mixed_precision = mixed_precision
        self.device = device
        self.checkpoint_every = checkpoint_every
        self.max_time = max_time
        self.workers = workers
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values sit at the training mean
        tags.transformer_tags.preserves_dtype = ["float32"]  # codes are float32 whatever the input
        return tags

    def _family(self) -> str:
        return "autoencoder"

    def _net(self, n_outputs: int | None, dropout: float) -> tuple[str, dict[str, Any]]:
        return "forgeml.models.nets.autoencoder.Autoencoder", {
            "n_features": int(self.encoder_.state["n_features"]), "hidden_sizes": jsonable_list(self.hidden_sizes),
            "bottleneck": int(self.bottleneck), "batch_norm": bool(self.batch_norm), "dropout": dropout,
            "activation": self.activation,
        }

    def fit(self, X: Any, y: Any = None) -> AutoencoderTransformer:
        """Learn to reconstruct the rows of X (N, F); y is ignored."""
        from forgeml.models.neural_inputs import InputEncoder

        config = self._prepare()
        if config.loss not in ("auto", "mse", "mae", "huber"):
            raise NeuralParameterError(f"loss '{config.loss}' is for classification; an autoencoder takes auto, mse, mae or huber")
        self.encoder_ = InputEncoder("mlp").fit(X)
        (x,) = self.encoder_.transform(X)
        self._set_input_attributes(X)
        self._train((x,), x, config, task="reconstruction", n_outputs=None)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Bottleneck codes (N, bottleneck) float32."""
        return self._outputs(self._encode(X), method="encode")

    def reconstruction_error(self, X: Any) -> np.ndarray:
        """Mean squared reconstruction error per row (N,), in standardised units: high = unusual."""
        (x,) = self._encode(X)
        rebuilt = self._outputs((x,))
        return ((rebuilt - x) ** 2).mean(axis=1).astype(np.float64)

    @property
    def _n_features_out(self) -> int:
        return int(self.bottleneck)
