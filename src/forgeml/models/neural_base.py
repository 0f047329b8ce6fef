"""Machinery the neural estimators share: NeuralSpec from parameters, the training call, inference,
and the JSON state a saved model is rebuilt from. torch is imported only inside the methods."""

from __future__ import annotations

import logging
import os
import typing
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from forgeml.errors import SpecError, did_you_mean
from forgeml.spec import NeuralSpec

log = logging.getLogger(__name__)

ARCHITECTURES = ("mlp", "cnn", "rnn", "transformer")
ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "leaky_relu", "elu")  # = forgeml.models.nets.layers.ACTIVATIONS
SPEC_FIELDS = tuple(NeuralSpec.model_fields)  # every one is also an estimator parameter
POSITIVE = Interval(Integral, 1, None, closed="left")
PREDICT_BATCH = 1024  # rows per inference batch, fewer for large rows (images): about PREDICT_VALUES values
PREDICT_VALUES = 1 << 22
THREADS_ENV = "FORGEML_TORCH_THREADS"  # set it to pin torch's intra-op threads; unset, torch's default stands
_COMMON_FITTED = ("n_features_in_", "feature_names_in_", "history_", "best_epoch_", "n_epochs_", "stopped_early_",
                  "device_")


class NeuralParameterError(SpecError, ValueError):
    """A bad estimator parameter: a SpecError (one line in the CLI) and a ValueError (what sklearn expects)."""


def require_torch(family: str) -> Any:
    """Import torch, or raise SpecError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise SpecError(f"model family '{family}' needs PyTorch: pip install 'forgeml[neural]'") from None
    threads = os.environ.get(THREADS_ENV, "")
    if threads.isdigit() and int(threads) > 0 and torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))
    return torch


def spec_error(exc: Any, owner: str) -> NeuralParameterError:
    """NeuralSpec's ValidationError as one line naming each parameter and the value received."""
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"])
        received = err.get("input")
        hint = ""
        if err["type"] == "literal_error" and isinstance(received, str):
            options = typing.get_args(NeuralSpec.model_fields[str(err["loc"][0])].annotation)
            hint = did_you_mean(received, [str(o) for o in options])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{owner} parameter '{name}': {msg} (got {received!r}){hint}")
    return NeuralParameterError("; ".join(parts))


def spec_constraints() -> dict[str, list]:
    """sklearn constraints of the shared parameters (NeuralSpec's fields are checked by NeuralSpec itself)."""
    return {"random_state": [Interval(Integral, 0, None, closed="left"), None]}


def jsonable_list(values: Any) -> list[int]:
    return [int(v) for v in values]


def accuracy(outputs: Any, targets: Any) -> float:
    """Share of rows whose largest logit is the target: outputs (B, K), targets (B,) int64."""
    return float((outputs.argmax(dim=1) == targets).float().mean())


def binary_accuracy(outputs: Any, targets: Any) -> float:
    """Share of rows on the right side of 0: outputs (B, 1) logits, targets (B, 1) in {0, 1}."""
    return float(((outputs > 0).float() == targets).float().mean())


def holdout(n: int, config: NeuralSpec, stratify: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Row indices (train, validation) for early stopping; validation None when nothing watches it or
    too few rows. Stratified on `stratify` (class codes) when every class has two rows or more."""
    from sklearn.model_selection import train_test_split

    watched = config.early_stopping is not None or config.scheduler == "plateau"
    n_val = int(np.ceil(n * config.validation_fraction)) if watched else 0
    if n_val < 1 or n - n_val < 2:
        return np.arange(n), None
    rows = np.arange(n)
    if stratify is not None:
        try:
            train, val = train_test_split(rows, test_size=n_val, random_state=seed, stratify=stratify)
            return np.sort(train), np.sort(val)
        except ValueError:  # a class too small to appear on both sides
            pass
    train, val = train_test_split(rows, test_size=n_val, random_state=seed)
    return np.sort(train), np.sort(val)


def _log_event(event: str, payload: dict[str, Any]) -> None:
    """Trainer events go to the log and to the caller's sink (the CLI's progress display)."""
    from forgeml.events import emit

    log.debug("trainer %s: %s", event, payload)
    emit(event, payload)


# ----------------------------------------------------------------------------- JSON state


def plain(value: Any) -> Any:
    """Parameters as JSON values: tuples become lists, numpy scalars Python numbers, specs dicts."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def pack(value: Any) -> Any:
    """A fitted attribute as JSON; arrays keep their dtype."""
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": "object" if value.dtype == object else value.dtype.str}
    return plain(value)


def unpack(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"ndarray", "dtype"}:
        return np.array(value["ndarray"], dtype=object if value["dtype"] == "object" else np.dtype(value["dtype"]))
    return value


# ----------------------------------------------------------------------------- the mixin


class TorchEstimatorMixin:
    """Config, validation, training and inference for estimators whose learned state is a torch module_.

    Subclasses define _family(), _net(n_outputs, dropout) -> (class path, kwargs), `_saved` (their own
    fitted attributes to save) and optionally _check_combinations() and `_int_lists`.
    """

    _int_lists: tuple[str, ...] = ()
    _saved: tuple[str, ...] = ()

    # -- parameters -------------------------------------------------------------------------------

    def _config(self) -> NeuralSpec:
        """The NeuralSpec the parameters describe; None keeps the spec's default.

        early_stopping: True keeps NeuralSpec's default settings, False or None turns it off (as
        `early_stopping: null` in a spec), a dict or EarlyStoppingSpec gives the settings.
        """
        from pydantic import ValidationError

        values = {name: getattr(self, name) for name in SPEC_FIELDS}
        stopping = values.pop("early_stopping")
        kwargs = {k: v for k, v in values.items() if v is not None}
        if stopping is None or stopping is False:
            kwargs["early_stopping"] = None
        elif stopping is not True:
            kwargs["early_stopping"] = stopping
        try:
            return NeuralSpec(**kwargs)
        except ValidationError as exc:
            raise spec_error(exc, type(self).__name__) from None

    def _validate_params(self) -> None:
        """Declared constraints, list checks, cross-parameter checks, then NeuralSpec's validation."""
        try:
            super()._validate_params()
        except InvalidParameterError as exc:
            raise NeuralParameterError(str(exc)) from None
        for name in self._int_lists:
            value = getattr(self, name)
            if value is None and name == "image_shape":
                continue
            items = list(value) if isinstance(value, (list, tuple)) else []
            if not items or not all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in items):
                raise NeuralParameterError(
                    f"The '{name}' parameter of {type(self).__name__} must be a non-empty list of positive ints. "
                    f"Got {value!r} instead."
                )
        self._check_combinations()
        self._config()

    def _check_combinations(self) -> None:
        """Checks across parameters (subclasses)."""

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _prepare(self) -> NeuralSpec:
        """Start of fit: torch available, parameters valid; returns the training config."""
        require_torch(self._family())
        self._validate_params()
        return self._config()

    def _set_input_attributes(self, X: Any) -> None:
        self.n_features_in_ = self.encoder_.n_features_in()
        self.__dict__.pop("feature_names_in_", None)
        self.__dict__.pop("vocabulary_", None)
        if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        if self.encoder_.vocabulary is not None:
            self.vocabulary_ = self.encoder_.vocabulary

    def _encode(self, X: Any, lengths: Any = None) -> tuple[np.ndarray, ...]:
        """Network inputs for X with the fitted encoder; NotFittedError before fit."""
        check_is_fitted(self, "module_")
        return self.encoder_.transform(X, lengths, owner=type(self).__name__)

    # -- training and inference -------------------------------------------------------------------

    def _train(
        self,
        inputs: tuple[np.ndarray, ...],
        targets: np.ndarray,
        config: NeuralSpec,
        *,
        task: str,
        n_outputs: int | None,
        stratify: np.ndarray | None = None,
        codes: np.ndarray | None = None,
        metric: Any = None,
    ) -> None:
        """Build the network and fit it with the Trainer on (inputs, targets), holding out rows for
        early stopping; with config.workers > 1 in that many DDP processes. Sets module_ (on CPU, eval
        mode), net_, history_, best_epoch_, n_epochs_, device_."""
        torch = require_torch(self._family())
        from forgeml.jobs import current_slot
        from forgeml.training.checkpoint import META

        seed = self._seed()
        train_rows, val_rows = holdout(len(targets), config, stratify, seed)
        class_weights = None
        if config.class_weight == "balanced" and codes is not None:
            counts = np.bincount(codes[train_rows], minlength=int(codes.max()) + 1).astype(np.float64)
            class_weights = torch.tensor(len(train_rows) / (len(counts) * np.maximum(counts, 1.0)), dtype=torch.float32)
        path, kwargs = self._net(n_outputs, float(config.dropout))
        slot = current_slot()  # inside a forgeml training job: where this fit checkpoints, and resumes from
        job = {"net": (path, kwargs), "arrays": (*inputs, targets), "rows": (train_rows, val_rows), "config": config,
               "task": task, "class_weights": class_weights, "metric": metric, "seed": seed, "checkpoint_dir": slot,
               "resume": slot is not None and (slot / META).is_file()}
        log.debug("fitting %s on %d rows (%s held out, %d workers): %s", path, len(train_rows),
                  0 if val_rows is None else len(val_rows), config.workers, kwargs)
        if config.workers > 1:
            from forgeml.training.distributed import context, launch

            if context().enabled:  # under torchrun: this process is already one rank of the group
                result = fit_rank(context().rank, context().world_size, job)
            else:
                result = launch(fit_rank, config.workers, job)[0]
            module = net_class_of(path)(**kwargs)
            module.load_state_dict(result.pop("weights"))
        else:
            result = fit_rank(0, 1, job, keep_module=True)
            module = result.pop("module")
        if slot is not None:
            import shutil

            shutil.rmtree(slot, ignore_errors=True)  # the fit is complete: nothing left to resume
        self._set_trained(module, path, kwargs, result)

    def _set_trained(self, module: Any, path: str, kwargs: dict[str, Any], result: dict[str, Any]) -> None:
        """The fitted attributes of a trained network: module_ (on CPU, eval mode), net_, history_, ..."""
        self.module_ = module.to("cpu").eval()
        self.net_ = {"class": path, "kwargs": kwargs}
        self.history_ = result["history"]
        self.best_epoch_ = result["best_epoch"]
        self.n_epochs_ = result["epochs"]
        self.stopped_early_ = result["stopped_early"]
        self.device_ = result["device"]

    def _outputs(self, inputs: tuple[np.ndarray, ...], method: str | None = None) -> np.ndarray:
        """The network's outputs (N, K) float32 for encoded inputs, in batches on CPU without gradients."""
        torch = require_torch(self._family())
        module = self.module_
        forward = getattr(module, method) if method else module
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in inputs]
        row_values = max(1, sum(int(np.prod(t.shape[1:])) for t in tensors))
        batch = int(np.clip(PREDICT_VALUES // row_values, 16, PREDICT_BATCH))
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(tensors[0]), batch):
                chunks.append(forward(*(t[start : start + batch] for t in tensors)).float().numpy())
        if not chunks:
            width = self.net_["kwargs"].get("n_outputs") or self.net_["kwargs"].get("bottleneck") or 1
            return np.zeros((0, width), dtype=np.float32)
        return np.concatenate(chunks)

    # -- saving -----------------------------------------------------------------------------------

    def _export(self) -> dict[str, Any]:
        """Everything but the weights, as JSON: parameters, fitted attributes, input encoder, network."""
        check_is_fitted(self, "module_")
        return {
            "params": plain(self.get_params(deep=False)),
            "fitted": {n: pack(getattr(self, n)) for n in (*_COMMON_FITTED, *self._saved) if hasattr(self, n)},
            "encoder": self.encoder_.to_dict(),
            "net": self.net_,
        }

    @classmethod
    def _restore(cls, payload: dict[str, Any], module: Any) -> Any:
        """The fitted estimator from `_export()`'s payload and its rebuilt, weight-loaded network."""
        from forgeml.models.neural_inputs import InputEncoder

        estimator = cls(**payload["params"])
        for name, value in payload["fitted"].items():
            setattr(estimator, name, unpack(value))
        estimator.encoder_ = InputEncoder.from_dict(payload["encoder"])
        if estimator.encoder_.vocabulary is not None:
            estimator.vocabulary_ = estimator.encoder_.vocabulary
        estimator.net_ = payload["net"]
        estimator.module_ = module.eval()
        return estimator


# ----------------------------------------------------------------------------- one fit, in any process


def net_class_of(path: str) -> Any:
    from forgeml.models.nets import net_class

    return net_class(path)


def fit_rank(rank: int, world_size: int, job: dict[str, Any], keep_module: bool = False) -> dict[str, Any]:
    """Build the network and train it on this rank's share of `job` (see `_train`); run in-process or by
    `forgeml.training.distributed.launch` in each of the DDP processes. Returns the fit's outcome and, on
    rank 0, the trained weights (or the module itself with keep_module)."""
    torch = require_torch("neural")
    from torch.utils.data import Subset, TensorDataset

    from forgeml.training.trainer import Trainer

    path, kwargs = job["net"]
    dataset = TensorDataset(*(torch.from_numpy(np.ascontiguousarray(a)) for a in job["arrays"]))
    train_rows, val_rows = job["rows"]
    train = Subset(dataset, train_rows.tolist())
    val = Subset(dataset, val_rows.tolist()) if val_rows is not None else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(job["seed"])
        module = net_class_of(path)(**kwargs)
    trainer = Trainer(module, job["config"], task=job["task"], class_weights=job["class_weights"],
                      metric=job["metric"], seed=job["seed"], checkpoint_dir=job["checkpoint_dir"],
                      on_event=_log_event)
    state = trainer.fit(train, val, resume_from=job["checkpoint_dir"] if job["resume"] else None)
    out = {"history": list(state.history), "best_epoch": state.best_epoch, "epochs": int(state.epoch),
           "stopped_early": bool(state.stopped_early), "device": str(trainer.device)}
    if keep_module:
        out["module"] = trainer.module
    elif rank == 0:
        out["weights"] = {k: v.detach().to("cpu").clone() for k, v in trainer.module.state_dict().items()}
    return out
