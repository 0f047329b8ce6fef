"""Neural networks as scikit-learn estimators: `fit` drives forgeml's PyTorch Trainer.

NeuralClassifier and NeuralRegressor take an `architecture` ("mlp" | "cnn" | "rnn" | "transformer"),
its hyperparameters, and every field of `forgeml.spec.NeuralSpec` as top-level parameters (None: the
spec's default), so clone, get_params, set_params and searches treat them like any estimator.
AutoencoderTransformer (neural_autoencoder.py) learns bottleneck codes of table rows.
torch is imported inside the methods that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import warnings
from numbers import Integral
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions

from forgeml.models.neural_autoencoder import AutoencoderTransformer
from forgeml.models.neural_base import (
    ACTIVATIONS,
    ARCHITECTURES,
    POSITIVE,
    NeuralParameterError,
    TorchEstimatorMixin,
    accuracy,
    binary_accuracy,
    jsonable_list,
    spec_constraints,
)
from forgeml.models.neural_inputs import InputError

__all__ = ["ARCHITECTURES", "AutoencoderTransformer", "NeuralClassifier", "NeuralParameterError", "NeuralRegressor"]


class _NeuralEstimator(TorchEstimatorMixin, BaseEstimator):
    """What NeuralClassifier and NeuralRegressor share: parameters, input encoding, network choice.

    Architecture parameters (others are ignored by architectures that do not use them):
      mlp          hidden_sizes, activation (relu), batch_norm, categorical_features (columns of integer
                   codes given embeddings), embedding_dim (default: sized by each column's cardinality)
      cnn          channels, kernel_size, convs_per_block, conv_pool, global_pool, batch_norm, activation
                   (relu), image_shape ((C, H, W) or (H, W), to read flat pixel rows)
      rnn          rnn_type, hidden_size, num_layers (1), bidirectional, embedding_dim (64), pooling (last)
      transformer  d_model, nhead, num_layers (2), dim_feedforward (2 d_model), positional, pooling
                   (mean), activation (gelu)
      text         tokenizer ("word" | "char"), vocab_size, min_frequency, max_length (rnn, transformer)
    Training parameters: every NeuralSpec field (see `forgeml init`), random_state (None: 0).
    """

    _parameter_constraints: ClassVar[dict] = {
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "hidden_sizes": [list, tuple],
        "activation": [StrOptions(set(ACTIVATIONS)), None],
        "batch_norm": ["boolean"],
        "categorical_features": [list, tuple, None],
        "embedding_dim": [POSITIVE, None],
        "channels": [list, tuple],
        "kernel_size": [POSITIVE],
        "convs_per_block": [POSITIVE],
        "conv_pool": [StrOptions({"max", "avg", "none"})],
        "global_pool": ["boolean"],
        "image_shape": [list, tuple, None],
        "rnn_type": [StrOptions({"lstm", "gru"})],
        "hidden_size": [POSITIVE],
        "num_layers": [POSITIVE, None],
        "bidirectional": ["boolean"],
        "d_model": [POSITIVE],
        "nhead": [POSITIVE],
        "dim_feedforward": [POSITIVE, None],
        "positional": [StrOptions({"learned", "sinusoidal"})],
        "pooling": [StrOptions({"last", "mean", "cls"}), None],
        "tokenizer": [StrOptions({"word", "char"}), None],
        "vocab_size": [Interval(Integral, 3, None, closed="left")],
        "min_frequency": [POSITIVE],
        "max_length": [POSITIVE, None],
        **spec_constraints(),
    }
    _int_lists = ("hidden_sizes", "channels", "image_shape")

    def __init__(
        self,
        architecture: str = "mlp",
        *,
        hidden_sizes: tuple[int, ...] = (128, 64),
        activation: str | None = None,
        batch_norm: bool = True,
        categorical_features: list[int | str] | None = None,
        embedding_dim: int | None = None,
        channels: tuple[int, ...] = (32, 64),
        kernel_size: int = 3,
        convs_per_block: int = 2,
        conv_pool: str = "max",
        global_pool: bool = True,
        image_shape: tuple[int, ...] | None = None,
        rnn_type: str = "lstm",
        hidden_size: int = 64,
        num_layers: int | None = None,
        bidirectional: bool = False,
        d_model: int = 64,
        nhead: int = 4,
        dim_feedforward: int | None = None,
        positional: str = "learned",
        pooling: str | None = None,
        tokenizer: str | None = None,
        vocab_size: int = 20000,
        min_frequency: int = 1,
        max_length: int | None = None,
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
        self.architecture = architecture
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.batch_norm = batch_norm
        self.categorical_features = categorical_features
        self.embedding_dim = embedding_dim
        self.channels = channels
        self.kernel_size = kernel_size
        self.convs_per_block = convs_per_block
        self.conv_pool = conv_pool
        self.global_pool = global_pool
        self.image_shape = image_shape
        self.rnn_type = rnn_type
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.d_model = d_model
        self.nhead = nhead
        self.dim_feedforward = dim_feedforward
        self.positional = positional
        self.pooling = pooling
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.min_frequency = min_frequency
        self.max_length = max_length
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
        tags.input_tags.allow_nan = self.architecture in ("mlp", "rnn", "transformer")  # missing -> the mean
        tags.input_tags.two_d_array = self.architecture != "cnn"
        tags.input_tags.three_d_array = self.architecture != "mlp"
        tags.input_tags.string = self.tokenizer is not None
        return tags

    # -- training from Parquet ----------------------------------------------------------------------

    def fit_parquet(self, path: str | Path, target: str, features: list[str] | None = None,
                    validation: str | Path | None = None) -> Any:
        """Train an mlp on a Parquet file or folder larger than memory, a record batch at a time; afterwards
        predict takes DataFrames of the same feature columns. validation: a Parquet path, or None to hold
        out whole row groups (validation_fraction). See forgeml.training.streaming."""
        from forgeml.training.streaming import fit_parquet

        return fit_parquet(self, path, target, features=features, validation=validation)

    # -- checks across parameters ------------------------------------------------------------------

    def _check_combinations(self) -> None:
        arch, name = self.architecture, type(self).__name__
        if self.image_shape is not None and len(self.image_shape) not in (2, 3):
            raise NeuralParameterError(f"image_shape must be (C, H, W) or (H, W); got {tuple(self.image_shape)}")
        if arch == "cnn" and self.kernel_size % 2 == 0:
            raise NeuralParameterError(f"kernel_size must be odd for {name}(architecture='cnn'); got {self.kernel_size}")
        if arch == "transformer":
            if self.d_model % self.nhead:
                raise NeuralParameterError(f"d_model ({self.d_model}) must be divisible by nhead ({self.nhead})")
            if self.activation not in (None, "relu", "gelu"):
                raise NeuralParameterError(f"a transformer's activation is relu or gelu; got {self.activation!r}")
            if self.pooling == "last":
                raise NeuralParameterError("pooling 'last' is for rnn; a transformer pools with 'mean' or 'cls'")
        if arch == "rnn" and self.pooling == "cls":
            raise NeuralParameterError("pooling 'cls' is for transformer; an rnn pools with 'last' or 'mean'")
        if self.tokenizer is not None and arch not in ("rnn", "transformer"):
            raise NeuralParameterError(f"tokenizer is for rnn and transformer; architecture is '{arch}'")

    # -- the network ------------------------------------------------------------------------------

    def _family(self) -> str:
        return self.architecture

    def _make_encoder(self) -> Any:
        from forgeml.models.neural_inputs import InputEncoder

        return InputEncoder(self.architecture, image_shape=self.image_shape, tokenizer=self.tokenizer,
                            vocab_size=self.vocab_size, min_frequency=self.min_frequency, max_length=self.max_length,
                            categorical_features=self.categorical_features)

    def _net(self, n_outputs: int, dropout: float) -> tuple[str, dict[str, Any]]:
        """(class path, constructor kwargs) of the network for the fitted input encoder."""
        data = self.encoder_.net_inputs()
        arch = self.architecture
        if arch == "mlp":
            cards = data["cardinalities"]
            return "forgeml.models.nets.mlp.MLP", {
                "n_numeric": data["n_numeric"], "n_outputs": n_outputs, "hidden_sizes": jsonable_list(self.hidden_sizes),
                "cardinalities": cards, "embedding_dims": [self.embedding_dim] * len(cards) if self.embedding_dim else None,
                "batch_norm": bool(self.batch_norm), "dropout": dropout, "activation": self.activation or "relu",
            }
        if arch == "cnn":
            return "forgeml.models.nets.cnn.CNN", {
                "in_channels": data["in_channels"], "n_outputs": n_outputs, "image_size": data["image_size"],
                "channels": jsonable_list(self.channels), "kernel_size": int(self.kernel_size),
                "convs_per_block": int(self.convs_per_block), "batch_norm": bool(self.batch_norm),
                "pool": self.conv_pool, "global_pool": bool(self.global_pool), "dropout": dropout,
                "activation": self.activation or "relu",
            }
        source = {k: data[k] for k in ("vocab_size", "n_features") if k in data}
        if arch == "rnn":
            return "forgeml.models.nets.rnn.RNN", {
                "n_outputs": n_outputs, **source, "embedding_dim": int(self.embedding_dim or 64),
                "rnn_type": self.rnn_type, "hidden_size": int(self.hidden_size), "num_layers": int(self.num_layers or 1),
                "bidirectional": bool(self.bidirectional), "dropout": dropout, "pooling": self.pooling or "last",
            }
        return "forgeml.models.nets.transformer.Transformer", {
            "n_outputs": n_outputs, **source, "max_length": int(data["max_length"]), "d_model": int(self.d_model),
            "nhead": int(self.nhead), "num_layers": int(self.num_layers or 2),
            "dim_feedforward": int(self.dim_feedforward) if self.dim_feedforward else None, "dropout": dropout,
            "positional": self.positional, "pooling": self.pooling or "mean", "activation": self.activation or "gelu",
        }

    def _encode_inputs(self, X: Any, lengths: Any, n_targets: int) -> tuple[np.ndarray, ...]:
        """Fit the input encoder on X and return the network inputs; sets n_features_in_ (and vocabulary_)."""
        self.encoder_ = self._make_encoder().fit(X, lengths)
        inputs = self.encoder_.transform(X, lengths, owner=type(self).__name__)
        if len(inputs[0]) != n_targets:
            raise InputError(f"X has {len(inputs[0])} rows but y has {n_targets}; give one target per row")
        if n_targets == 0:
            raise InputError(f"{type(self).__name__} got no rows to train on")
        self._set_input_attributes(X)
        return inputs


def _target(y: Any, owner: str) -> np.ndarray:
    if y is None:
        raise InputError(f"{owner} requires y to be passed, but the target y is None")
    return np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)


class NeuralClassifier(ClassifierMixin, _NeuralEstimator):
    """A neural network classifier; labels may be strings or ints. predict_proba: softmax of the logits
    (sigmoid with loss="bce", binary only). Learned: module_, classes_, history_, best_epoch_, device_,
    n_features_in_, vocabulary_ (text input)."""

    _saved = ("classes_", "output_")

    def fit(self, X: Any, y: Any, lengths: Any = None) -> NeuralClassifier:
        """Train on X (shapes: see _NeuralEstimator) and labels y (N,); lengths (N,) for padded sequences."""
        config = self._prepare()
        loss = config.loss
        if loss in ("mse", "mae", "huber"):
            raise NeuralParameterError(f"loss '{loss}' is for regression; a classifier takes auto, cross_entropy or bce")
        self.classes_, codes = np.unique(self._labels(y), return_inverse=True)
        if len(self.classes_) == 0:
            raise InputError(f"{type(self).__name__} got no rows to train on (y is empty)")
        if len(self.classes_) < 2:
            raise InputError(f"the target has one class '{self.classes_[0]}'; a classifier needs at least two")
        if loss == "bce" and len(self.classes_) != 2:
            raise NeuralParameterError(f"loss 'bce' is for two classes; the target has {len(self.classes_)}: use cross_entropy")
        inputs = self._encode_inputs(X, lengths, len(codes))
        sigmoid = loss == "bce"
        self.output_ = "sigmoid" if sigmoid else "softmax"
        targets = codes.astype(np.float32)[:, None] if sigmoid else codes.astype(np.int64)
        self._train(inputs, targets, config, task="classification", n_outputs=1 if sigmoid else len(self.classes_),
                    stratify=codes, codes=codes, metric=binary_accuracy if sigmoid else accuracy)
        return self

    def predict_proba(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Class probabilities (N, n_classes) float64, columns in classes_ order."""
        logits = self._outputs(self._encode(X, lengths)).astype(np.float64)
        if self.output_ == "sigmoid":
            p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.column_stack([1.0 - p, p])
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Predicted labels (N,)."""
        proba = self.predict_proba(X, lengths)
        return self.classes_[np.argmax(proba, axis=1)]

    def _labels(self, y: Any) -> np.ndarray:
        """y as a 1-D array of labels; missing labels and continuous targets are refused."""
        from sklearn.exceptions import DataConversionWarning
        from sklearn.utils.multiclass import type_of_target

        y = _target(y, type(self).__name__)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected; using y.ravel()",
                          DataConversionWarning, stacklevel=3)
            y = y[:, 0]
        if y.ndim != 1:
            raise InputError(f"a classifier takes one label per row (N,); got y of shape {y.shape}")
        missing = pd.isna(y) if y.dtype == object or y.dtype.kind == "f" else np.zeros(len(y), dtype=bool)
        if missing.any():
            raise InputError(f"the target has {int(missing.sum())} missing labels; drop or fill those rows")
        if y.dtype.kind == "f" and type_of_target(y) == "continuous":
            raise InputError("Unknown label type: continuous target (fractional numbers); use NeuralRegressor to predict numbers")
        return y


class NeuralRegressor(RegressorMixin, _NeuralEstimator):
    """A neural network regressor for one target (N,) or several (N, k). Targets are standardised for
    training and predictions mapped back. Learned: module_, history_, best_epoch_, device_, n_features_in_."""

    _saved = ("y_ndim_", "y_mean_", "y_scale_")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def fit(self, X: Any, y: Any, lengths: Any = None) -> NeuralRegressor:
        """Train on X and numeric targets y (N,) or (N, k); lengths (N,) for padded sequences."""
        config = self._prepare()
        if config.loss in ("cross_entropy", "bce"):
            raise NeuralParameterError(f"loss '{config.loss}' is for classification; a regressor takes auto, mse, mae or huber")
        try:
            y = _target(y, type(self).__name__)
            if y.dtype.kind == "c":
                raise InputError("Complex data not supported: y holds complex numbers")
            y = y.astype(np.float64)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError("a regressor needs numeric targets; y holds values that are not numbers") from None
        if y.ndim not in (1, 2) or not np.isfinite(y).all():
            raise InputError("y must be (N,) or (N, k) finite numbers; drop or fill missing targets")
        self.y_ndim_ = y.ndim
        y2 = y.reshape(len(y), -1)
        self.y_mean_ = y2.mean(axis=0) if len(y2) else np.zeros(y2.shape[1])
        std = y2.std(axis=0) if len(y2) else np.ones(y2.shape[1])
        self.y_scale_ = np.where(std > 1e-12, std, 1.0)
        inputs = self._encode_inputs(X, lengths, len(y2))
        targets = ((y2 - self.y_mean_) / self.y_scale_).astype(np.float32)
        self._train(inputs, targets, config, task="regression", n_outputs=y2.shape[1])
        return self

    def predict(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Predicted values (N,) float64 for a 1-D target, else (N, k)."""
        out = self._outputs(self._encode(X, lengths)).astype(np.float64) * self.y_scale_ + self.y_mean_
        return out[:, 0] if self.y_ndim_ == 1 else out
