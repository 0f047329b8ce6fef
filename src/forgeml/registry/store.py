"""Tracking and model registry on MLflow: runs, registered models, versions, aliases and lineage.

The store is FORGEML_TRACKING_URI when set (any MLflow tracking URI: http(s) server, postgresql://,
sqlite:///...), else the embedded SQLite database `FORGEML_HOME/mlflow.db` (FORGEML_HOME defaults to
./forgeml-home) with artifacts in FORGEML_HOME/artifacts. MLflow is imported inside methods so that
importing this module stays instant, and every call goes through one explicit MlflowClient.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.errors import ModelNotFoundError, RegistryError, did_you_mean
from forgeml.registry.runs import _MAX_TAG, RunHandle, _text, local_path

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from forgeml.model import ForgeModel

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "forgeml"
REF_FORMS = "NAME, NAME@latest, NAME@ALIAS, NAME/VERSION, models:/NAME/VERSION or models:/NAME@ALIAS"
_REF_RE = re.compile(r"(?P<name>[^@/:]+)(?:@(?P<alias>[^@/]*)|/(?P<version>[^@/]*))?")
_ALIAS_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
_NOISY_LOGGERS = ("alembic", "mlflow.store", "mlflow.tracking", "mlflow.pyfunc", "mlflow.models", "mlflow.utils")
_quieted = False


def quiet_mlflow() -> None:
    """Silence MLflow's INFO chatter (migrations, 'git' warnings, progress bars); idempotent."""
    global _quieted
    if _quieted:
        return
    _quieted = True
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def forgeml_home() -> Path:
    """FORGEML_HOME as an absolute path (default ./forgeml-home)."""
    return Path(os.environ.get("FORGEML_HOME") or "forgeml-home").expanduser().resolve()


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """Split a model reference into (name, version, alias); bare NAME gives (name, None, None).

    Accepts NAME, NAME@latest, NAME@ALIAS, NAME/3, models:/NAME/3 and models:/NAME@ALIAS.
    """
    text = ref.strip() if isinstance(ref, str) else ""
    body = text[len("models:/") :] if text.startswith("models:/") else text
    match = _REF_RE.fullmatch(body)
    if not match or not match["name"].strip():
        raise ModelNotFoundError(f"malformed model reference {ref!r}; use {REF_FORMS}")
    name, alias, version = match["name"].strip(), match["alias"], match["version"]
    if version is not None:
        if version.lower() == "latest":
            return name, None, "latest"
        if not version.isdigit() or int(version) < 1:
            raise ModelNotFoundError(
                f"malformed model reference {ref!r}: version {version!r} is not a positive number; "
                f"use e.g. '{name}/3' or '{name}@ALIAS'"
            )
        return name, int(version), None
    if alias is not None:
        if not _ALIAS_RE.fullmatch(alias):
            raise ModelNotFoundError(
                f"malformed model reference {ref!r}: alias {alias!r} must be letters, digits, _ or -; use {REF_FORMS}"
            )
        return name, None, "latest" if alias.lower() == "latest" else alias
    return name, None, None


def _mask(uri: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", uri)


def _dt(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms else None


@dataclass
class ModelVersionInfo:
    """One registered model version, as `resolve` and `versions` return it."""

    name: str
    version: int
    run_id: str | None
    source: str
    aliases: list[str] = field(default_factory=list)
    created: datetime | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "READY"

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


class Store:
    """The tracking store and model registry; one MlflowClient, created on first use."""

    def __init__(self, tracking_uri: str | None = None, *, experiment: str = DEFAULT_EXPERIMENT):
        home = forgeml_home()
        uri = tracking_uri or os.environ.get("FORGEML_TRACKING_URI", "").strip() or None
        self._cache_root = home / "cache"
        self._experiment_name = experiment
        self._experiment_id: str | None = None
        self._client: MlflowClient | None = None
        if uri is None:
            self._home: Path | None = home
            self._uri = f"sqlite:///{(home / 'mlflow.db').as_posix()}"
            self._artifact_location: str | None = (home / "artifacts").as_uri()
        else:
            self._home, self._uri, self._artifact_location = None, uri, None

    # -- properties ---------------------------------------------------------------------

    @property
    def tracking_uri(self) -> str:
        return self._uri

    @property
    def home(self) -> Path | None:
        """FORGEML_HOME for the embedded store; None for an external tracking URI."""
        return self._home

    @property
    def artifact_location(self) -> str | None:
        return self._artifact_location

    def describe(self) -> str:
        return f"the store in {self._home}" if self._home else f"the tracking store {_mask(self._uri)}"

    def __repr__(self) -> str:
        return f"Store({_mask(self._uri)!r})"

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            quiet_mlflow()
            if self._home is not None:
                (self._home / "artifacts").mkdir(parents=True, exist_ok=True)
            from mlflow.tracking import MlflowClient

            with self._errors("opening"):
                self._client = MlflowClient(tracking_uri=self._uri, registry_uri=self._uri)
        return self._client

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as exc:
            message = str(exc.message).strip().splitlines()[0] if str(exc.message).strip() else type(exc).__name__
            raise RegistryError(f"{action} failed in {self.describe()}: {message}") from exc

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            from mlflow.exceptions import MlflowException

            client = self.client
            with self._errors(f"opening experiment '{self._experiment_name}'"):
                exp = client.get_experiment_by_name(self._experiment_name)
                if exp is None:
                    try:
                        self._experiment_id = client.create_experiment(
                            self._experiment_name, artifact_location=self._artifact_location
                        )
                    except MlflowException as exc:  # created meanwhile by another process
                        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                            raise
                        self._experiment_id = client.get_experiment_by_name(self._experiment_name).experiment_id
                else:
                    if exp.lifecycle_stage == "deleted":
                        client.restore_experiment(exp.experiment_id)
                    self._experiment_id = exp.experiment_id
        return self._experiment_id

    # -- runs ---------------------------------------------------------------------------

    def start_run(self, run_name: str, *, tags: Mapping[str, Any] | None = None) -> RunHandle:
        """Open a run in the forgeml experiment; use it as a context manager."""
        import getpass
        import sys

        import forgeml

        base = {"mlflow.source.type": "LOCAL", "mlflow.source.name": Path(sys.argv[0] or "python").name,
                "forgeml.version": forgeml.__version__}
        try:
            base["mlflow.user"] = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in some containers
            pass
        all_tags = {k: _text(v, _MAX_TAG) for k, v in {**base, **(tags or {})}.items()}
        with self._errors(f"starting run '{run_name}'"):
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        return RunHandle(self, run)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A run's params, metrics, tags, artifact URI, status and times, for lineage display."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(f"run '{run_id}' not found in {self.describe()}") from None
            raise RegistryError(f"reading run '{run_id}' failed in {self.describe()}: {exc.message}") from exc
        info = run.info
        return {
            "run_id": info.run_id, "run_name": info.run_name, "experiment_id": info.experiment_id,
            "status": info.status, "lifecycle_stage": info.lifecycle_stage,
            "start_time": _dt(info.start_time), "end_time": _dt(info.end_time),
            "artifact_uri": info.artifact_uri, "params": dict(run.data.params),
            "metrics": dict(run.data.metrics), "tags": dict(run.data.tags),
        }

    # -- registry -----------------------------------------------------------------------

    def register(
        self,
        name: str,
        model_dir: Path,
        run: RunHandle,
        *,
        description: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> int:
        """Upload `model_dir` as the run's `model` artifact and register it as a new version of `name`."""
        from mlflow.exceptions import MlflowException

        from forgeml.spec import MODEL_NAME_PATTERN

        if not re.fullmatch(MODEL_NAME_PATTERN, name or ""):
            raise RegistryError(
                f"invalid model name {name!r}; use 1-100 letters, digits, _ . - starting with a letter or digit"
            )
        model_dir = Path(model_dir)
        if not (model_dir / "MLmodel").is_file():
            raise RegistryError(
                f"'{model_dir}' is not a saved model package (no MLmodel); save it with save_package first"
            )
        client = self.client
        version_tags = {k: _text(v, _MAX_TAG) for k, v in (tags or {}).items()}
        try:
            from forgeml.registry.package import package_hash

            version_tags.setdefault("forgeml.package_sha256", package_hash(model_dir))
        except Exception:  # noqa: BLE001 - a plain MLflow model has no forgeml manifest
            pass
        with self._errors(f"registering model '{name}'"):
            run.log_artifacts(model_dir, "model")
            created_model = False
            try:
                client.create_registered_model(name)
                created_model = True
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            mv = None
            try:
                mv = client.create_model_version(
                    name, f"{run.artifact_uri}/model", run_id=run.run_id, tags=version_tags, description=description,
                    await_creation_for=0,  # our own wait below polls faster than MLflow's 1 s sleeps
                )
                self._wait_ready(name, mv)
            except BaseException:
                self._undo_register(name, mv, created_model)
                raise
        version = int(mv.version)
        run._versions.append((name, version))
        log.info("registered %s version %d from run %s", name, version, run.run_id)
        return version

    def _wait_ready(self, name: str, mv: Any, timeout: float = 300.0) -> None:
        delay, deadline = 0.05, time.monotonic() + timeout
        while mv.status == "PENDING_REGISTRATION":
            if time.monotonic() > deadline:
                raise RegistryError(f"version {mv.version} of model '{name}' still pending after {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            mv = self.client.get_model_version(name, mv.version)
        if mv.status != "READY":
            raise RegistryError(f"registering version {mv.version} of model '{name}' failed: {mv.status_message}")

    def _undo_register(self, name: str, mv: Any, created_model: bool) -> None:
        try:
            if mv is not None:
                self.client.delete_model_version(name, mv.version)
            if created_model:
                self.client.delete_registered_model(name)
        except Exception:  # noqa: BLE001 - cleanup must not hide the original error
            log.warning("could not clean up the failed registration of '%s'", name, exc_info=True)

    def _registered_names(self) -> list[str]:
        return [rm.name for rm in self._registered_models()]

    def _registered_models(self) -> list[Any]:
        out, token = [], None
        with self._errors("listing models"):
            while True:
                page = self.client.search_registered_models(max_results=1000, page_token=token)
                out += list(page)
                token = page.token
                if not token:
                    return out

    def _registered_model(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                raise RegistryError(f"reading model '{name}' failed in {self.describe()}: {exc.message}") from exc
        names = self._registered_names()
        if not names:
            raise ModelNotFoundError(
                f"model '{name}' not found: no models registered yet in {self.describe()}; "
                f"train one with `forgeml train ... --name {name}`"
            )
        hint = did_you_mean(name, names) or f" (registered: {', '.join(sorted(names)[:20])})"
        raise ModelNotFoundError(f"model '{name}' not found in {self.describe()}{hint}")

    def _version_objects(self, name: str) -> list[Any]:
        quote = '"' if "'" in name else "'"
        out, token = [], None
        with self._errors(f"listing versions of '{name}'"):
            while True:
                page = self.client.search_model_versions(
                    f"name = {quote}{name}{quote}", max_results=10000, page_token=token
                )
                out += list(page)
                token = page.token
                if not token:
                    return sorted(out, key=lambda mv: int(mv.version))

    @staticmethod
    def _info(mv: Any, aliases: Mapping[str, Any]) -> ModelVersionInfo:
        """`aliases` is the registered model's {alias: version}: version searches do not carry them."""
        return ModelVersionInfo(
            name=mv.name, version=int(mv.version), run_id=mv.run_id or None, source=mv.source,
            aliases=sorted(a for a, v in aliases.items() if int(v) == int(mv.version)),
            created=_dt(mv.creation_timestamp), description=mv.description or "",
            tags=dict(mv.tags or {}), status=str(mv.status),
        )

    def resolve(self, ref: str) -> ModelVersionInfo:
        """The model version a reference (NAME, NAME@latest, NAME@ALIAS, NAME/3, models:/...) points to."""
        name, version, alias = parse_ref(ref)
        rm = self._registered_model(name)
        aliases = dict(rm.aliases or {})
        if version is not None:
            versions = self._version_objects(name)
            found = [mv for mv in versions if int(mv.version) == version]
            if not found:
                listing = ", ".join(str(mv.version) for mv in versions[-20:]) or "none"
                raise ModelNotFoundError(f"model '{name}' has no version {version}; existing versions: {listing}")
            return self._info(found[0], aliases)
        if alias is None or alias == "latest":
            ready = [mv for mv in self._version_objects(name) if str(mv.status) == "READY"]
            if not ready:
                raise ModelNotFoundError(
                    f"model '{name}' has no ready version yet; train one with `forgeml train ... --name {name}`"
                )
            return self._info(ready[-1], aliases)
        if alias not in aliases:
            if aliases:
                listing = ", ".join(f"{a} (v{v})" for a, v in sorted(aliases.items()))
                hint = did_you_mean(alias, aliases) or f"; existing aliases: {listing}"
            else:
                hint = f"; it has no aliases yet: use '{name}@latest' or '{name}/VERSION'"
            raise ModelNotFoundError(f"model '{name}' has no alias '{alias}'{hint}")
        with self._errors(f"reading {name}@{alias}"):
            return self._info(self.client.get_model_version(name, str(aliases[alias])), aliases)

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of model `name`, oldest first."""
        aliases = dict(self._registered_model(name).aliases or {})
        return [self._info(mv, aliases) for mv in self._version_objects(name)]

    def list_models(self) -> list[dict[str, Any]]:
        """One row per registered model: name, latest_version, aliases {alias: version}, updated, description."""
        rows = []
        for rm in self._registered_models():
            latest = max((int(mv.version) for mv in rm.latest_versions or []), default=None)
            rows.append({
                "name": rm.name, "latest_version": latest,
                "aliases": {a: int(v) for a, v in sorted((rm.aliases or {}).items())},
                "updated": _dt(rm.last_updated_timestamp), "description": rm.description or "",
            })
        return sorted(rows, key=lambda r: r["name"])

    def set_alias(self, name: str, version: int, alias: str) -> None:
        """Point `alias` at version `version` of model `name` (moving it if it pointed elsewhere)."""
        if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias):
            raise RegistryError(f"invalid alias {alias!r}; use 1-255 letters, digits, _ or -, e.g. 'champion'")
        if alias.lower() == "latest" or alias.isdigit() or re.fullmatch(r"[vV]\d+", alias):
            raise RegistryError(
                f"alias {alias!r} is reserved ('latest', numbers and v<number> name versions); "
                "choose another, e.g. 'champion'"
            )
        info = self.resolve(f"{name}/{int(version)}")
        with self._errors(f"setting alias '{alias}' on '{name}'"):
            self.client.set_registered_model_alias(name, alias, str(info.version))

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove `alias` from model `name`."""
        aliases = dict(self._registered_model(name).aliases or {})
        if alias not in aliases:
            listing = ", ".join(sorted(aliases)) or "none"
            raise ModelNotFoundError(f"model '{name}' has no alias '{alias}'; existing aliases: {listing}")
        with self._errors(f"deleting alias '{alias}' of '{name}'"):
            self.client.delete_registered_model_alias(name, alias)

    # -- artifacts ----------------------------------------------------------------------

    def download(self, ref_or_info: str | ModelVersionInfo) -> Path:
        """A local folder holding the saved model package of a version (no copy for local artifacts)."""
        info = ref_or_info if isinstance(ref_or_info, ModelVersionInfo) else self.resolve(ref_or_info)
        local = local_path(info.source)
        if local is not None and (local / "MLmodel").is_file():
            return local
        safe = re.sub(r"[^\w.-]", "_", info.name)
        target = self._cache_root / safe / str(info.version)
        marker = self._cache_root / safe / f"{info.version}.source"
        if target.is_dir() and marker.is_file() and marker.read_text(encoding="utf-8") == info.source:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{info.version}-", dir=target.parent))
        try:
            with self._errors(f"downloading {info.ref}"):
                uri = self.client.get_model_version_download_uri(info.name, str(info.version))
                from mlflow.artifacts import download_artifacts

                got = Path(download_artifacts(artifact_uri=uri, dst_path=str(tmp), tracking_uri=self._uri))
            if target.exists():
                shutil.rmtree(target)
            os.replace(got, target)
            marker.write_text(info.source, encoding="utf-8")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def load_model(self, ref: str) -> ForgeModel:
        """Resolve, fetch and verify a registered model; its metadata gains name, version, run_id, aliases."""
        from forgeml.registry.package import load_package

        info = self.resolve(ref)
        model = load_package(self.download(info))
        model.metadata.update(name=info.name, version=info.version, run_id=info.run_id, aliases=info.aliases)
        return model
