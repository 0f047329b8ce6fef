"""One tracking run: what the pipeline logs (params, metrics, artifacts), and its clean-up on failure."""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

if TYPE_CHECKING:
    from forgeml.registry.store import Store

log = logging.getLogger(__name__)

_MAX_KEY, _MAX_PARAM, _MAX_TAG = 250, 6000, 8000  # MLflow's limits


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _key(key: str) -> str:
    return re.sub(r"[^\w\-. /]", "_", str(key))[:_MAX_KEY]


def _text(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RunHandle:
    """One tracking run; a context manager that ends FINISHED, or is deleted if its body raises."""

    def __init__(self, store: Store, run: Any):
        self._store = store
        self._client = store.client
        self._info = run.info
        self._params: dict[str, str] = {}
        self._versions: list[tuple[str, int]] = []  # registered through this run: undone on failure

    @property
    def run_id(self) -> str:
        return self._info.run_id

    @property
    def artifact_uri(self) -> str:
        return self._info.artifact_uri

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            with self._store._errors(f"ending run {self.run_id}"):
                self._client.set_terminated(self.run_id, "FINISHED")
        else:
            self.discard()
        return False

    def discard(self) -> None:
        """Delete the run, its local artifacts and the versions registered from it; never raises."""
        for name, version in self._versions:
            try:
                self._client.delete_model_version(name, str(version))
            except Exception:  # noqa: BLE001 - cleanup must not hide the original error
                log.warning("could not delete version %s of model '%s' of a failed run", version, name)
        try:
            self._client.set_terminated(self.run_id, "FAILED")
            self._client.delete_run(self.run_id)
            local = local_path(self.artifact_uri)
            if local is not None and self._store.home is not None:
                shutil.rmtree(local.parent if local.name == "artifacts" else local, ignore_errors=True)
        except Exception:  # noqa: BLE001
            log.warning("could not delete failed run %s", self.run_id, exc_info=True)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters: nested dicts flattened with dots, values stringified and truncated."""
        from mlflow.entities import Param

        batch = []
        for key, value in _flatten(params):
            key, text = _key(key), _text(value, _MAX_PARAM)
            if key in self._params:
                if self._params[key] != text:
                    log.warning("param %r already logged as %r; MLflow params are immutable, %r not logged",
                                key, self._params[key], text)
                continue
            self._params[key] = text
            batch.append(Param(key, text))
        self._log_batch("params", batch, 100)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric metrics (nested dicts flattened); non-finite or non-numeric values are skipped."""
        from mlflow.entities import Metric

        now, batch = int(time.time() * 1000), []
        for key, value in _flatten(metrics):
            try:
                number = float(value)
            except (TypeError, ValueError):
                log.warning("metric %r is not a number (%r); not logged", key, value)
                continue
            if not math.isfinite(number):
                log.warning("metric %r is %s; not logged", key, number)
                continue
            batch.append(Metric(_key(key), number, now, step or 0))
        self._log_batch("metrics", batch, 1000)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._log_batch("tags", [RunTag(_key(k), _text(v, _MAX_TAG)) for k, v in tags.items()], 100)

    def _log_batch(self, kind: str, batch: list, size: int) -> None:
        with self._store._errors(f"logging {kind} to run {self.run_id}"):
            for start in range(0, len(batch), size):
                self._client.log_batch(self.run_id, **{kind: batch[start : start + size]}, synchronous=True)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Write `obj` as YAML (.yaml/.yml) or JSON (anything else) to the run's `artifact_file`."""
        import json

        import yaml

        from forgeml.registry.package import jsonable

        if artifact_file.endswith((".yaml", ".yml")):
            text = yaml.safe_dump(jsonable(obj), sort_keys=False, allow_unicode=True)
        else:
            text = json.dumps(jsonable(obj), indent=2)
        self.log_text(text, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(artifact_file).name
            local.write_text(text, encoding="utf-8")
            parent = Path(artifact_file).parent.as_posix()
            self.log_artifact(local, None if parent in ("", ".") else parent)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        with self._store._errors(f"uploading '{local_path}' to run {self.run_id}"):
            self._client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        with self._store._errors(f"uploading '{local_dir}' to run {self.run_id}"):
            self._client.log_artifacts(self.run_id, str(local_dir), artifact_path)


def local_path(uri: str) -> Path | None:
    """The local folder behind a file: URI or plain path, else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri)
    return None
