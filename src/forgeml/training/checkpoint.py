"""A self-describing, resumable checkpoint directory.

    model.safetensors   the module's weights (safetensors: no code runs on load)
    trainer_state.pt    optimiser, schedule, GradScaler and RNG states, the TrainState, the position
                        inside the epoch and the best epoch's weights; tensors and plain values only,
                        loaded with torch.load(weights_only=True)
    checkpoint.json     what this is: format, config (the NeuralSpec as JSON), task, seed, epoch,
                        module class, torch version and the sha256 of each file, checked on load

Files are written under temporary names and renamed, checkpoint.json last, so a checkpoint
interrupted while being written fails its hash check instead of loading half-updated.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from forgeml.errors import IntegrityError, SpecError
from forgeml.hashing import sha256_file

logger = logging.getLogger(__name__)

FORMAT = "forgeml-checkpoint"
VERSION = 1
WEIGHTS, STATE, META = "model.safetensors", "trainer_state.pt", "checkpoint.json"




def class_name(module: torch.nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def save_checkpoint(directory: Path, module: torch.nn.Module, payload: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write weights, `payload` (the trainer's state) and checkpoint.json (`meta` plus hashes) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = {name: directory / f".{name}.tmp" for name in (WEIGHTS, STATE, META)}
    save_model(module, str(tmp[WEIGHTS]), force_contiguous=True)
    torch.save(payload, tmp[STATE])
    files = {name: sha256_file(tmp[name]) for name in (WEIGHTS, STATE)}
    record = {"format": FORMAT, "version": VERSION, "module_class": class_name(module),
              "torch_version": torch.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              **meta, "files": files}
    tmp[META].write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    for name in (WEIGHTS, STATE, META):
        os.replace(tmp[name], directory / name)
    logger.info("checkpoint written to %s (epoch %s)", directory, meta.get("epoch"))
    return directory


def read_meta(directory: Path) -> dict[str, Any]:
    """checkpoint.json, after checking that every file it lists matches its sha256."""
    directory = Path(directory)
    meta_path = directory / META
    if not meta_path.is_file():
        raise SpecError(
            f"'{directory}' is not a forgeml checkpoint (no {META}); pass the directory a checkpoint was written to"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IntegrityError(f"{meta_path} is not valid JSON ({exc}); the checkpoint is damaged") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise IntegrityError(
            f"{meta_path} is not a version {VERSION} {FORMAT} (format {meta.get('format')!r}, version {meta.get('version')!r})"
        )
    for name, expected in meta.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            raise IntegrityError(f"checkpoint file '{name}' is missing from {directory}")
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(
                f"checkpoint file '{name}' in {directory} does not match its recorded sha256 "
                f"(expected {expected[:12]}..., got {actual[:12]}...); the checkpoint is damaged or was modified"
            )
    return meta


def load_checkpoint(directory: Path, module: torch.nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify the checkpoint, load its weights into `module` and return (meta, payload)."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta["module_class"] != class_name(module):
        raise SpecError(
            f"checkpoint {directory} holds a {meta['module_class']}, not a {class_name(module)}; resume with the same network"
        )
    missing, unexpected = load_model(module, str(directory / WEIGHTS), strict=False)
    if missing or unexpected:
        raise SpecError(
            f"checkpoint {directory} does not fit this network (missing: {sorted(missing)}, unexpected: {sorted(unexpected)})"
        )
    try:
        payload = torch.load(directory / STATE, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IntegrityError(
            f"checkpoint file '{STATE}' in {directory} holds more than tensors and plain values ({first}); refusing to load it"
        ) from None
    return meta, payload
