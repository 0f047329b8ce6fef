"""The training loop: fit a torch module on (inputs, target) datasets as NeuralSpec says.

    trainer = Trainer(module, spec.neural, task="classification", metric=accuracy)
    state = trainer.fit(train_ds, val_ds)          # TrainState: history, best epoch, stop reason
    logits = trainer.predict(test_ds)              # (N, K) on CPU, in dataset order

Datasets are map-style (held in memory) or batch streams for data larger than memory
(streaming.ParquetStream, which shuffles and shards itself; see data.py).

The loop itself is `_loop` / `_train_epoch` below. Everything else (early stopping, periodic
checkpoints, progress events, metric logging, SIGINT/SIGTERM) is a callback that reads the
TrainState at named events and returns decisions (see callbacks/base.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from forgeml.errors import DataError, SpecError
from forgeml.spec import NeuralSpec
from forgeml.training import distributed
from forgeml.training.callbacks.base import EVENTS, Callback, Interrupt, NewBest, RestoreBest, SaveCheckpoint, Stop, overrides
from forgeml.training.callbacks.checkpoint import PeriodicCheckpoint
from forgeml.training.callbacks.early_stopping import EarlyStopping, resolve_monitor
from forgeml.training.callbacks.interrupt import SignalInterrupt
from forgeml.training.callbacks.progress import Progress
from forgeml.training.callbacks.time_limit import TimeLimit
from forgeml.training.checkpoint import load_checkpoint, save_checkpoint
from forgeml.training.data import Rows, TensorBatches, make_loader, split_batch
from forgeml.training.device import autocast_factory, resolve_device, resolve_precision
from forgeml.training.losses import l1_penalty, make_loss, resolve_loss, weight_matrices
from forgeml.training.optim import LrSchedule, make_optimizer
from forgeml.training.rng import capture_rng, restore_rng, seed_everything
from forgeml.training.state import PERSISTED, TrainingInterrupted, TrainState

__all__ = ["Trainer", "TrainState", "TrainingInterrupted"]

logger = logging.getLogger(__name__)

NO_CONTEXT = contextlib.nullcontext()
Metric = Callable[[torch.Tensor, torch.Tensor], float]
Loader = DataLoader | TensorBatches
EventSink = Callable[[str, dict], None]


def accumulation(batch: int, every: int, batches: int) -> tuple[int, bool]:
    """(size of the accumulation group holding batch `batch`, whether the optimiser steps after it).

    Groups are `every` consecutive batches; the last one may be shorter and still steps.
    """
    start = batch - batch % every
    end = min(start + every, batches)
    return end - start, batch + 1 == end


class Trainer:
    """Trains `module` with the settings of a NeuralSpec; see the module docstring.

    task: classification | regression | reconstruction (picks the loss when config.loss is auto).
    metric(outputs, targets) -> float, higher is better, computed on CPU over the validation set.
    """

    def __init__(self, module: torch.nn.Module, config: NeuralSpec, *, task: str,
                 class_weights: torch.Tensor | None = None, metric: Metric | None = None,
                 callbacks: Sequence[Callback] = (), seed: int = 0, checkpoint_dir: Path | None = None,
                 on_event: EventSink | None = None):
        self.module = module
        self.config = config
        self.task = task
        self.class_weights = class_weights
        self.metric = metric
        self.callbacks = list(callbacks)
        self.seed = seed
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.on_event = on_event
        self.loss_name = resolve_loss(task, config.loss)
        self.dist = distributed.context()
        self.device = resolve_device(config.device, local_rank=self.dist.local_rank)
        self.amp_dtype = resolve_precision(config.mixed_precision, self.device)
        self._move = self.device.type != "cpu"  # CPU tensors need no .to() call per batch
        self._ddp = self.dist.enabled
        self.state = TrainState()

    # ------------------------------------------------------------------ the loop

    def fit(self, train_data: Dataset, val_data: Dataset | None = None, *, resume_from: Path | None = None) -> TrainState:
        """Train for config.epochs (or until a callback stops it); resume_from continues a checkpoint exactly.

        The global RNGs (python, numpy, torch) are seeded from `seed` for the fit and given back to the
        caller as they were afterwards, so fitting a model does not change anyone else's random stream.
        """
        outer_rng = capture_rng()
        try:
            train_loader, val_loader = self._setup(train_data, val_data, resume_from)
            try:
                self._loop(train_loader, val_loader)
            except BaseException as exc:
                for handler in self._handlers["after_cancel_fit"]:
                    handler(self.state, exc)
                raise
        finally:
            restore_rng(outer_rng)
        return self.state

    def _loop(self, train_loader: Loader, val_loader: Loader | None) -> None:
        state = self.state
        self._emit("before_fit")
        while state.epoch < state.epochs and not state.stopped_early:
            self._emit("before_epoch")
            self._train_epoch(train_loader)
            if self._interrupt:
                break
            state.history.append(self._end_epoch(val_loader))
            state.epoch, state.batch = state.epoch + 1, 0
            self._emit("after_epoch")
            if self._sync_flags():
                break
        self._optimizer.zero_grad(set_to_none=True)  # free the gradients' memory
        if self._interrupt:
            self._raise_interrupted()
        self._emit("after_fit")

    def _train_epoch(self, loader: Loader) -> None:
        state, accum = self.state, self.config.grad_accumulation
        self._sampler.set_epoch(state.epoch)
        self._sampler.skip(state.batch)  # > 0 only when resuming mid-epoch
        self._loader_rng_at_epoch = self._loader_rng.get_state()
        self._epoch_start = time.perf_counter()
        self._model.train()
        for batch in loader:
            self._emit("before_batch")
            inputs, target = split_batch(batch)
            if target is None:
                raise DataError("training items must be (inputs, target) pairs; got inputs without a target")
            group, step_now = accumulation(state.batch, accum, state.batches)
            if state.batch % accum == 0:  # a new accumulation group
                self._optimizer.zero_grad(set_to_none=True)
            loss = self._train_step(inputs, target, scale=1.0 / group, step_now=step_now)
            rows = target.shape[0]
            self._loss_sum.add_(loss, alpha=rows)  # in place: keeping per-batch tensors fragments the heap
            self._loss_rows += rows
            state.batch, state.batch_loss = state.batch + 1, loss
            self._emit("after_batch")
            if step_now and self._sync_flags():
                break

    def _train_step(self, inputs: tuple[torch.Tensor, ...], target: torch.Tensor, *, scale: float,
                    step_now: bool) -> torch.Tensor:
        """Forward, backward of loss x scale (accumulation) and, when step_now, an optimiser step.  # -> 0-d loss"""
        if self._move:
            inputs = tuple(x.to(self.device, non_blocking=True) for x in inputs)
            target = target.to(self.device, non_blocking=True)
        # Under DDP, batches before the group's last accumulate locally; the last one averages across ranks.
        with self._model.no_sync() if self._ddp and not step_now else NO_CONTEXT:
            with self._autocast():
                outputs = self._model(*inputs)
            loss = self._loss(outputs.float(), target)
            total = loss + self.config.l1 * l1_penalty(self._l1_params) if self._l1_params else loss
            if scale != 1.0:
                total = total * scale
            (self._scaler.scale(total) if self._scaler else total).backward()
        if step_now:
            self._optimizer_step()
        return loss.detach()

    def _optimizer_step(self) -> None:
        if self._scheduled:
            self._schedule.apply(self.state.global_step)
        if self.config.grad_clip:
            if self._scaler:
                self._scaler.unscale_(self._optimizer)
            torch.nn.utils.clip_grad_norm_(self._params, self.config.grad_clip)
        if self._scaler:
            self._scaler.step(self._optimizer)
            self._scaler.update()
        else:
            self._optimizer.step()
        self.state.global_step += 1

    def _end_epoch(self, val_loader: Loader | None) -> dict[str, Any]:
        """The epoch's history row (losses averaged over samples and ranks); resets the accumulators."""
        state = self.state
        rows = torch.tensor(float(self._loss_rows), dtype=self._loss_sum.dtype, device=self._loss_sum.device)
        sums = distributed.all_reduce_sum(torch.stack([self._loss_sum, rows]))
        row: dict[str, Any] = {"epoch": state.epoch + 1, "train_loss": (sums[0] / sums[1]).item()}
        if val_loader is not None:
            row.update(self._validate(val_loader))
        row["lr"] = self._optimizer.param_groups[0]["lr"]
        row["seconds"] = self._epoch_seconds + time.perf_counter() - self._epoch_start
        self._schedule.end_epoch(state.epoch + 1, row.get(state.monitor))
        self._loss_sum.zero_()
        self._loss_rows, self._epoch_seconds = 0, 0.0
        return row

    # ------------------------------------------------------------------ evaluation

    def _validate(self, loader: Loader) -> dict[str, float]:
        """val_loss (and val_metric) over this rank's shard, averaged over samples and ranks."""
        self.module.eval()
        loss_sum, count = 0.0, 0
        outputs, targets = Rows(self._val_rows), Rows(self._val_rows)
        with torch.no_grad():
            for batch in loader:
                inputs, target = split_batch(batch)
                out = self._forward(inputs).float()
                target = target.to(self.device, non_blocking=True) if self._move else target
                loss_sum += float(self._loss(out, target)) * target.shape[0]
                count += target.shape[0]
                if self.metric is not None:
                    outputs.add(out)
                    targets.add(target)
        score = float(self.metric(outputs.tensor(), targets.tensor())) if self.metric and count else 0.0
        sums = distributed.all_reduce_sum(torch.tensor([loss_sum, count, score * count], dtype=torch.float64))
        row = {"val_loss": (sums[0] / sums[1]).item()}
        if self.metric is not None:
            row["val_metric"] = (sums[2] / sums[1]).item()
        return row

    def predict(self, data: Dataset, batch_size: int | None = None) -> torch.Tensor:
        """Raw outputs (logits for classification) for every item of `data`, in order, on CPU.  # (N, ...)"""
        self.module.to(self.device).eval()
        loader, sampler = make_loader(data, batch_size or self.config.batch_size, shuffle=False, pad=False,
                                      pin_memory=self.device.type == "cuda")
        outputs = Rows(sampler.num_samples)  # a batch stream's len() counts batches, not rows
        with torch.no_grad():
            for batch in loader:
                outputs.add(self._forward(split_batch(batch)[0]).float())
        return outputs.tensor()

    def _forward(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        inputs = tuple(x.to(self.device, non_blocking=True) for x in inputs)
        with autocast_factory(self.device, self.amp_dtype)():
            return self.module(*inputs)

    # ------------------------------------------------------------------ events and decisions

    def _emit(self, event: str) -> None:
        for handler in self._handlers[event]:
            result = handler(self.state)
            if result is None:
                continue
            for decision in (result if isinstance(result, (list, tuple)) else (result,)):
                if decision is not None:
                    self._decide(decision)

    def _decide(self, decision: Any) -> None:
        state = self.state
        if isinstance(decision, Stop):
            if not state.stopped_early:
                state.stopped_early, state.stop_reason = True, decision.reason
        elif isinstance(decision, Interrupt):
            self._interrupt = self._interrupt or decision.signal
        elif isinstance(decision, SaveCheckpoint):
            if self.checkpoint_dir is not None and state.is_main:
                self.save_checkpoint(self.checkpoint_dir)
        elif isinstance(decision, NewBest):
            state.best_epoch, state.best_score = state.epoch, decision.score
            self._best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.module.state_dict().items()}
        elif isinstance(decision, RestoreBest):
            if self._best_weights is not None:
                self.module.load_state_dict(self._best_weights)
        else:
            raise TypeError(f"a callback returned {decision!r}; expected Stop, Interrupt, SaveCheckpoint, NewBest or RestoreBest")

    def _sync_flags(self) -> bool:
        """Whether to leave the current loop (stop or interrupt); under DDP every rank leaves together."""
        state = self.state
        if not self._ddp:
            return state.stopped_early or bool(self._interrupt)
        flags = distributed.all_reduce_sum(torch.tensor([float(state.stopped_early), float(bool(self._interrupt))]))
        if flags[0] and not state.stopped_early:
            state.stopped_early, state.stop_reason = True, "stopped on another rank"
        if flags[1] and not self._interrupt:
            self._interrupt = "a signal on another rank"
        return state.stopped_early or bool(self._interrupt)

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, directory: Path) -> Path:
        """Write a resumable checkpoint of the run as it stands now (see checkpoint.py)."""
        state = self.state
        payload = {
            "state": state.persisted(),
            "position": {
                "batch": state.batch, "batches": state.batches,
                "loss_sum": self._loss_sum.cpu(), "loss_rows": self._loss_rows, "seconds": self._epoch_seconds + (
                    time.perf_counter() - self._epoch_start if state.batch else 0.0),
                "loader_rng_epoch": self._loader_rng_at_epoch, "loader_rng": self._loader_rng.get_state(),
            },
            "optimizer": self._optimizer.state_dict(),
            "schedule": self._schedule.state_dict(),
            "scaler": self._scaler.state_dict() if self._scaler else None,
            "rng": capture_rng(),
            "best_weights": self._best_weights,
        }
        meta = {"epoch": state.epoch, "batch": state.batch, "global_step": state.global_step, "task": self.task,
                "seed": self.seed, "world_size": state.world_size, "config": self.config.model_dump(mode="json")}
        return save_checkpoint(Path(directory), self.module, payload, meta)

    def _restore(self, directory: Path) -> dict[str, Any]:
        """Load a checkpoint into the module, optimiser, schedule, scaler and state; returns its RNG states."""
        meta, payload = load_checkpoint(Path(directory), self.module)
        if meta.get("task") != self.task:
            raise SpecError(f"checkpoint {directory} was written for task {meta.get('task')}, not {self.task}")
        now = self.config.model_dump(mode="json")
        changed = sorted(k for k in now if meta["config"].get(k) != now[k])
        if changed:
            logger.warning("resuming %s with changed settings: %s", directory, ", ".join(changed))
        position = payload["position"]
        if position["batch"] and position["batches"] != self.state.batches:
            raise SpecError(f"checkpoint {directory} stopped mid-epoch with {position['batches']} batches per epoch; "
                            f"this data gives {self.state.batches}: resume with the same data and batch_size")
        self._optimizer.load_state_dict(payload["optimizer"])
        self._schedule.load_state_dict(payload["schedule"])
        if self._scaler and payload["scaler"]:
            self._scaler.load_state_dict(payload["scaler"])
        for key in PERSISTED:
            setattr(self.state, key, payload["state"][key])
        self.state.batch = position["batch"]
        self._loss_sum.copy_(position["loss_sum"])
        self._loss_rows, self._epoch_seconds = position["loss_rows"], position["seconds"]
        self._loader_rng.set_state(position["loader_rng_epoch"] if position["batch"] else position["loader_rng"])
        self._best_weights = payload["best_weights"]
        return payload["rng"]

    def _raise_interrupted(self) -> None:
        state = self.state
        path = self.checkpoint_dir
        if state.is_main:
            path = self.save_checkpoint(path or Path(tempfile.mkdtemp(prefix="forgeml-checkpoint-")))
        if self._ddp:
            torch.distributed.barrier()  # the others wait until rank 0 has written it
        where = (f"in epoch {state.epoch + 1} of {state.epochs} after batch {state.batch} of {state.batches}"
                 if state.batch else f"after epoch {state.epoch} of {state.epochs}")
        raise TrainingInterrupted(
            f"training interrupted by {self._interrupt} {where}; checkpoint written to {path}; "
            f"resume with fit(..., resume_from='{path}')", epoch=state.epoch, checkpoint_path=path, state=state)

    # ------------------------------------------------------------------ setup

    def _setup(self, train_data: Dataset, val_data: Dataset | None, resume_from: Path | None) -> tuple[Loader, Loader | None]:
        """Everything fit needs, then the checkpoint's state when resuming, then the RNGs (last)."""
        if len(train_data) == 0:
            raise DataError("the training data is empty; the trainer needs at least one (inputs, target) item")
        self.module.to(self.device)
        train_loader, val_loader = self._build(train_data, val_data)
        rng = self._restore(resume_from) if resume_from is not None else None
        self._model = self.module
        if self._ddp:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._model = DistributedDataParallel(self.module, device_ids=ids)  # broadcasts rank 0's weights
        callbacks = self._assemble_callbacks()
        self._handlers = {event: [getattr(cb, event) for cb in callbacks if overrides(cb, event)] for event in EVENTS}
        if rng is not None:
            restore_rng(rng)  # last: nothing above may draw from the global RNGs after this
        else:
            seed_everything(self.seed + self.dist.rank)
        return train_loader, val_loader

    def _build(self, train_data: Dataset, val_data: Dataset | None) -> tuple[Loader, Loader | None]:
        """Loss, optimiser, scaler, loaders, schedule and a fresh TrainState for this fit."""
        cfg, rank, world = self.config, self.dist.rank, self.dist.world_size
        self._params = [p for p in self.module.parameters() if p.requires_grad]
        self._l1_params = weight_matrices(self.module) if cfg.l1 else []
        self._loss = make_loss(self.loss_name, class_weights=self.class_weights, label_smoothing=cfg.label_smoothing)
        self._optimizer = make_optimizer(self.module, cfg)
        self._scaler = torch.amp.GradScaler("cuda") if self.amp_dtype is torch.float16 else None
        self._autocast = autocast_factory(self.device, self.amp_dtype)
        self._loader_rng = torch.Generator()
        self._loader_rng.manual_seed(self.seed)
        pin = self.device.type == "cuda"
        train_loader, self._sampler = make_loader(train_data, cfg.batch_size, shuffle=True, seed=self.seed, rank=rank,
                                                  world_size=world, pad=True, pin_memory=pin, generator=self._loader_rng)
        val_loader, self._val_rows = None, 0
        if val_data is not None and len(val_data) > 0:
            val_loader, val_sampler = make_loader(val_data, cfg.batch_size, shuffle=False, rank=rank, world_size=world,
                                                  pad=False, pin_memory=pin)
            self._val_rows = val_sampler.num_samples  # this rank's share
        logged = ("train_loss",)
        if val_loader is not None:
            logged += ("val_loss", "val_metric") if self.metric else ("val_loss",)
        monitor, mode = resolve_monitor(cfg.early_stopping.monitor if cfg.early_stopping else "val_loss", logged)
        batches = len(train_loader)
        # By default half early stopping's patience, so the rate drops before training stops.
        patience = cfg.plateau_patience or (max(1, cfg.early_stopping.patience // 2) if cfg.early_stopping else 5)
        steps_per_epoch = math.ceil(batches / cfg.grad_accumulation)
        self._schedule = LrSchedule(self._optimizer, cfg, steps_per_epoch, mode=mode, patience=patience)
        self._scheduled = cfg.scheduler != "none" or cfg.warmup_epochs > 0
        self.state = TrainState(epochs=cfg.epochs, batches=batches, monitor=monitor, logged=logged, rank=rank,
                                world_size=world)
        # This epoch's sum of loss x rows, kept on the device (no sync per batch); MPS has no float64.
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        self._loss_sum, self._loss_rows = torch.zeros((), dtype=dtype, device=self.device), 0
        self._epoch_seconds, self._epoch_start = 0.0, time.perf_counter()
        self._loader_rng_at_epoch = self._loader_rng.get_state()
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._interrupt: str | None = None
        return train_loader, val_loader

    def _assemble_callbacks(self) -> list[Callback]:
        cfg, callbacks = self.config, list(self.callbacks)
        if cfg.early_stopping is not None and not any(isinstance(c, EarlyStopping) for c in callbacks):
            callbacks.append(EarlyStopping.from_spec(cfg.early_stopping))
        if cfg.max_time is not None:
            callbacks.append(TimeLimit(cfg.max_time))
        if cfg.checkpoint_every and self.checkpoint_dir is not None:
            callbacks.append(PeriodicCheckpoint(cfg.checkpoint_every))
        elif cfg.checkpoint_every:
            logger.warning("neural.checkpoint_every=%d is ignored: this Trainer has no checkpoint_dir", cfg.checkpoint_every)
        if self.on_event is not None:
            callbacks.append(Progress(self.on_event))
        callbacks.append(SignalInterrupt())
        callbacks = [c for c in callbacks if self.state.is_main or not c.main_process_only]
        return sorted(callbacks, key=lambda c: c.order)
