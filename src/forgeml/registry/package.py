"""The saved model package: one directory that is both an MLflow pyfunc model and forgeml's safe format.

Layout (nothing in it is a pickle)::

    path/MLmodel, requirements.txt, python_env.yaml, conda.yaml, input_example.json    MLflow's files
    path/data/forgeml/forgeml.json          manifest: task, schema, classes, file hashes, trusted types
    path/data/forgeml/pipeline.skops        the fitted pipeline (skops), estimator step left out when a
                                            codec stores it natively
    path/data/forgeml/estimator.lgbm.txt    LightGBM booster in LightGBM's own text format
    path/data/forgeml/estimator.skops       the rest of the LightGBM wrapper (params, classes, ...)
    path/data/forgeml/estimator.cbm|.ubj    CatBoost / XGBoost model in its library's native format, with
                                            estimator.skops holding forgeml's wrapper state

`load_package` checks every file's sha256 against the manifest before reading it, and accepts only
skops types from the packages in TRUSTED_PACKAGES. MLflow loads the package through `_load_pyfunc`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forgeml.errors import IntegrityError, RegistryError
from forgeml.hashing import sha256_file

if TYPE_CHECKING:
    from forgeml.model import ForgeModel

log = logging.getLogger(__name__)

FORMAT = "forgeml-package"
FORMAT_VERSION = 1
MANIFEST = "forgeml.json"
DATA_DIR = "forgeml"  # MLflow copies it to path/data/forgeml
PIPELINE_FILE = "pipeline.skops"
TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy", "forgeml", "lightgbm")
# Plain standard-library containers found in library state (LightGBM's best_score holds one when a
# LightGBM model sits inside an ensemble); trusted by exact name, not by package.
TRUSTED_TYPES = ("collections.OrderedDict",)
EXAMPLE_ROWS = 5  # rows saved as MLflow's input_example
SIGNATURE_ROWS = 1000  # rows the signature is inferred from (more rows: truer `required` flags)


# ----------------------------------------------------------------------------- helpers


def jsonable(obj: Any) -> Any:
    """`obj` with numpy scalars/arrays, dates, paths and sets turned into plain JSON values."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((jsonable(v) for v in obj), key=str)
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, Enum):
        return jsonable(obj.value)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)




def _is_trusted(type_name: str) -> bool:
    return type_name in TRUSTED_TYPES or any(type_name == p or type_name.startswith(p + ".") for p in TRUSTED_PACKAGES)


def _dump_skops(obj: Any, path: Path, what: str) -> list[str]:
    """Write `obj` with skops and return the non-default types it holds; refuse foreign types."""
    import skops.io as sio

    try:
        sio.dump(obj, path)
    except Exception as exc:  # noqa: BLE001 - skops refuses lambdas, open files, ...
        raise IntegrityError(
            f"cannot save {what} without pickle: skops failed ({exc}); replace the offending object"
        ) from exc
    types = sorted(sio.get_untrusted_types(file=path))
    foreign = [t for t in types if not _is_trusted(t)]
    if foreign:
        raise IntegrityError(
            f"cannot save {what} safely: type '{foreign[0]}' is outside the trusted packages "
            f"({', '.join(TRUSTED_PACKAGES)}); use a scikit-learn equivalent or move the class into forgeml"
        )
    return types


def _load_skops(path: Path, listed: set[str]) -> Any:
    """Read a skops file trusting only types from TRUSTED_PACKAGES that the manifest lists."""
    import skops.io as sio

    types = sio.get_untrusted_types(file=path)
    for t in types:
        if not _is_trusted(t):
            raise IntegrityError(
                f"'{path.name}' in {path.parent} holds type '{t}' from outside the trusted packages "
                f"({', '.join(TRUSTED_PACKAGES)}); refusing to load it"
            )
        if t not in listed:
            raise IntegrityError(
                f"'{path.name}' in {path.parent} holds type '{t}' that {MANIFEST} does not list; "
                "the package was modified: re-download or re-register the model"
            )
    return sio.load(path, trusted=list(types))


# ----------------------------------------------------------------------------- estimator codecs


class EstimatorCodec(ABC):
    """Stores one kind of non-scikit-learn estimator in its own native format instead of skops."""

    name: str
    requirements: tuple[str, ...] = ()  # distributions a loading environment needs for this format

    @abstractmethod
    def handles(self, estimator: Any) -> bool:
        """Whether this codec stores `estimator`."""

    @abstractmethod
    def save(self, estimator: Any, directory: Path) -> tuple[dict[str, Any], list[str]]:
        """Write the estimator's files into `directory`; return (manifest entry, skops types used)."""

    @abstractmethod
    def load(self, directory: Path, entry: dict[str, Any], trusted: set[str]) -> Any:
        """Rebuild a predicting estimator from the files named in `entry` (already hash-checked)."""


class LightGBMCodec(EstimatorCodec):
    """LGBMClassifier / LGBMRegressor: booster as LightGBM model text, wrapper state via skops."""

    name = "lightgbm"
    requirements = ("lightgbm",)
    BOOSTER_FILE = "estimator.lgbm.txt"
    STATE_FILE = "estimator.skops"
    CLASSES = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker", "LGBMModel")
    _SKIP = ("_Booster", "_evals_result", "_best_score")  # the booster, and training history

    def handles(self, estimator: Any) -> bool:
        cls = type(estimator)
        return cls.__module__.startswith("lightgbm.") and cls.__name__ in self.CLASSES

    def save(self, estimator: Any, directory: Path) -> tuple[dict[str, Any], list[str]]:
        booster = estimator.booster_  # raises if the estimator is not fitted
        (directory / self.BOOSTER_FILE).write_text(booster.model_to_string(num_iteration=-1), encoding="utf-8")
        params = estimator.get_params(deep=False)
        state = {k: v for k, v in vars(estimator).items() if k not in params and k not in self._SKIP}
        types = _dump_skops({"params": params, "state": state}, directory / self.STATE_FILE, "the LightGBM model")
        entry = {
            "codec": self.name,
            "class": f"{type(estimator).__module__}.{type(estimator).__name__}",
            "files": [self.BOOSTER_FILE, self.STATE_FILE],
            "best_iteration": int(booster.best_iteration),
        }
        return entry, types

    def load(self, directory: Path, entry: dict[str, Any], trusted: set[str]) -> Any:
        import lightgbm

        module, _, cls_name = str(entry.get("class", "")).rpartition(".")
        if not module.startswith("lightgbm") or cls_name not in self.CLASSES:
            raise IntegrityError(f"unexpected LightGBM estimator class '{entry.get('class')}' in {MANIFEST}")
        saved = _load_skops(directory / self.STATE_FILE, trusted)
        estimator = getattr(lightgbm, cls_name)(**saved["params"])
        estimator.__dict__.update(saved["state"])
        booster = lightgbm.Booster(model_str=(directory / self.BOOSTER_FILE).read_text(encoding="utf-8"))
        booster.best_iteration = int(entry.get("best_iteration", -1))
        estimator._Booster = booster
        return estimator


class TorchCodec(EstimatorCodec):
    """forgeml's neural estimators: network weights as safetensors, everything else as JSON.

    The JSON holds the estimator's parameters, its fitted attributes, its input encoder (statistics,
    vocabulary) and the network's class path and constructor arguments. Loading rebuilds only
    classes named in ESTIMATORS and forgeml.models.nets.NET_CLASSES, then loads the weights.
    """

    name = "torch"
    requirements = ("torch", "safetensors")
    WEIGHTS_FILE = "estimator.safetensors"
    STATE_FILE = "estimator.torch.json"
    ESTIMATORS = ("NeuralClassifier", "NeuralRegressor", "AutoencoderTransformer")
    MODULE = "forgeml.models.neural"

    def handles(self, estimator: Any) -> bool:
        cls = type(estimator)
        return cls.__module__.startswith("forgeml.models.neural") and cls.__name__ in self.ESTIMATORS \
            and hasattr(estimator, "module_")

    def save(self, estimator: Any, directory: Path) -> tuple[dict[str, Any], list[str]]:
        from safetensors.torch import save_file

        payload = estimator._export()
        weights = {k: v.detach().cpu().contiguous() for k, v in estimator.module_.state_dict().items()}
        save_file(weights, str(directory / self.WEIGHTS_FILE), metadata={"format": "pt"})
        text = json.dumps(jsonable(payload), indent=1, allow_nan=False)
        (directory / self.STATE_FILE).write_text(text, encoding="utf-8")
        entry = {
            "codec": self.name,
            "class": f"{self.MODULE}.{type(estimator).__name__}",
            "net": payload["net"]["class"],
            "files": [self.WEIGHTS_FILE, self.STATE_FILE],
        }
        return entry, []

    def load(self, directory: Path, entry: dict[str, Any], trusted: set[str]) -> Any:
        module, _, cls_name = str(entry.get("class", "")).rpartition(".")
        if module != self.MODULE or cls_name not in self.ESTIMATORS:
            raise IntegrityError(f"unexpected neural estimator class '{entry.get('class')}' in {MANIFEST}")
        try:
            from safetensors.torch import load_file

            from forgeml.models import neural
            from forgeml.models.nets import net_class
        except ImportError as exc:
            raise IntegrityError(f"this model needs PyTorch and safetensors to load ({exc}): pip install 'forgeml[neural]'") from None
        try:
            payload = json.loads((directory / self.STATE_FILE).read_text(encoding="utf-8"))
            net = net_class(str(payload["net"]["class"]))(**payload["net"]["kwargs"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"'{self.STATE_FILE}' in {directory} does not describe a forgeml network: {exc}") from None
        try:
            net.load_state_dict(load_file(str(directory / self.WEIGHTS_FILE)), strict=True)
        except RuntimeError as exc:
            raise IntegrityError(f"'{self.WEIGHTS_FILE}' in {directory} does not fit its network: {str(exc).splitlines()[0]}") from None
        return getattr(neural, cls_name)._restore(payload, net)


class BoostingCodec(EstimatorCodec):
    """forgeml's CatBoost / XGBoost wrappers (forgeml.models.boosting): the library's fitted model in its
    native file, the wrapper's parameters and fitted state (classes, sizes) via skops."""

    library: str
    MODEL_FILE: str
    STATE_FILE = "estimator.skops"
    MODULE = "forgeml.models.boosting"
    WRAPPERS = ("BoostedClassifier", "BoostedRegressor")

    def handles(self, estimator: Any) -> bool:
        cls = type(estimator)
        if cls.__module__ != self.MODULE or cls.__name__ not in self.WRAPPERS or not hasattr(estimator, "estimator_"):
            return False
        from forgeml.models.boosting import library_of

        return library_of(estimator.estimator_) == self.library

    def save(self, estimator: Any, directory: Path) -> tuple[dict[str, Any], list[str]]:
        from forgeml.models.boosting import model_class_path, save_model_file

        save_model_file(estimator.estimator_, directory / self.MODEL_FILE)
        state = {k: v for k, v in vars(estimator).items() if k not in ("estimator", "estimator_")}
        saved = {"params": estimator.estimator.get_params(deep=False), "state": state}
        types = _dump_skops(saved, directory / self.STATE_FILE, f"the {self.library} model")
        entry = {
            "codec": self.name,
            "class": f"{self.MODULE}.{type(estimator).__name__}",
            "model_class": model_class_path(estimator.estimator_),
            "files": [self.MODEL_FILE, self.STATE_FILE],
            "n_estimators": int(estimator.n_estimators_),
        }
        return entry, types

    def load(self, directory: Path, entry: dict[str, Any], trusted: set[str]) -> Any:
        from forgeml.models import boosting

        module, _, cls_name = str(entry.get("class", "")).rpartition(".")
        model_path = str(entry.get("model_class", ""))
        if module != self.MODULE or cls_name not in self.WRAPPERS or boosting.MODEL_CLASSES.get(model_path) != self.library:
            raise IntegrityError(
                f"unexpected {self.library} estimator '{entry.get('class')}' holding '{model_path}' in {MANIFEST}"
            )
        saved = _load_skops(directory / self.STATE_FILE, trusted)
        try:
            fitted = boosting.load_model_bytes(model_path, (directory / self.MODEL_FILE).read_bytes())
        except ImportError:
            raise IntegrityError(f"this model needs {self.library} to load: pip install {self.requirements[0]}") from None
        except Exception as exc:  # noqa: BLE001 - CatBoostError, XGBoostError
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise IntegrityError(f"'{self.MODEL_FILE}' in {directory} is not a readable {self.library} model: {first}") from None
        wrapper = getattr(boosting, cls_name)(estimator=boosting.model_class(model_path)(**saved["params"]))
        wrapper.__dict__.update(saved["state"])
        wrapper.estimator_ = fitted
        return wrapper


class CatBoostCodec(BoostingCodec):
    """CatBoost models in CatBoost's binary .cbm format."""

    name = library = "catboost"
    requirements = ("catboost",)
    MODEL_FILE = "estimator.cbm"


class XGBoostCodec(BoostingCodec):
    """XGBoost models in XGBoost's Universal Binary JSON format."""

    name = library = "xgboost"
    requirements = ("xgboost-cpu",)
    MODEL_FILE = "estimator.ubj"


CODECS: list[EstimatorCodec] = [LightGBMCodec(), TorchCodec(), CatBoostCodec(), XGBoostCodec()]


def _codec_for(estimator: Any) -> EstimatorCodec | None:
    return next((c for c in CODECS if c.handles(estimator)), None)


def _codec_named(name: str) -> EstimatorCodec:
    for codec in CODECS:
        if codec.name == name:
            return codec
    raise IntegrityError(f"unknown estimator codec '{name}' in {MANIFEST}; upgrade forgeml to load this model")


class EnsembleCodec(EstimatorCodec):
    """forgeml's ensembles (forgeml.tuning.ensemble): each member saved as a model of its own (its
    pipeline via skops, its estimator with the codec it needs) under a `member<i>.` file prefix, a
    stacked meta-learner via skops, and the weights, classes and parameters as JSON."""

    name = "ensemble"
    STATE_FILE = "ensemble.json"
    META_FILE = "ensemble.meta.skops"
    MODULE = "forgeml.tuning.ensemble"
    ESTIMATORS = ("EnsembleClassifier", "EnsembleRegressor")

    def handles(self, estimator: Any) -> bool:
        cls = type(estimator)
        return cls.__module__ == self.MODULE and cls.__name__ in self.ESTIMATORS and hasattr(estimator, "members_")

    def save(self, estimator: Any, directory: Path) -> tuple[dict[str, Any], list[str]]:
        text = json.dumps(jsonable(estimator._export()), indent=1, allow_nan=False)
        (directory / self.STATE_FILE).write_text(text, encoding="utf-8")
        files, types, members = [self.STATE_FILE], [], []
        if estimator.meta_ is not None:
            types += _dump_skops(estimator.meta_, directory / self.META_FILE, "the ensemble's meta-learner")
            files.append(self.META_FILE)
        for i, member in enumerate(estimator.members_):
            prefix = f"member{i}."
            with tempfile.TemporaryDirectory() as tmp:
                item, used = self._save_member(member, Path(tmp), f"ensemble member {i}")
                for f in sorted(Path(tmp).iterdir()):
                    shutil.move(f, directory / (prefix + f.name))
                    files.append(prefix + f.name)
            members.append({**item, "prefix": prefix})
            types += used
        entry = {"codec": self.name, "class": f"{self.MODULE}.{type(estimator).__name__}", "files": files,
                 "members": members}
        return entry, sorted(set(types))

    def load(self, directory: Path, entry: dict[str, Any], trusted: set[str]) -> Any:
        module, _, cls_name = str(entry.get("class", "")).rpartition(".")
        if module != self.MODULE or cls_name not in self.ESTIMATORS:
            raise IntegrityError(f"unexpected ensemble class '{entry.get('class')}' in {MANIFEST}")
        from forgeml.tuning import ensemble

        files = set(entry.get("files", []))
        payload = json.loads((directory / self.STATE_FILE).read_text(encoding="utf-8"))
        meta = _load_skops(directory / self.META_FILE, trusted) if self.META_FILE in files else None
        members = [self._load_member(directory, item, files, trusted) for item in entry.get("members", [])]
        return getattr(ensemble, cls_name)._restore(payload, members, meta)

    @staticmethod
    def _save_member(member: Any, directory: Path, what: str) -> tuple[dict[str, Any], list[str]]:
        """One member (a Pipeline or an estimator) into `directory`, as `_write_model_files` saves a model."""
        from sklearn.pipeline import Pipeline

        estimator, step = member, None
        if isinstance(member, Pipeline):
            step, estimator = member.steps[-1]
        codec, types, entry = _codec_for(estimator), [], None
        if codec is not None:
            entry, types = codec.save(estimator, directory)
            entry["step"] = step
            member = None if step is None else copy.copy(member)
            if member is not None:
                member.steps = [*member.steps[:-1], (step, "passthrough")]
        if member is not None:
            types += _dump_skops(member, directory / PIPELINE_FILE, what)
        return {"pipeline": PIPELINE_FILE if member is not None else None, "estimator": entry}, types

    @staticmethod
    def _load_member(directory: Path, item: dict[str, Any], files: set[str], trusted: set[str]) -> Any:
        """One member back from its prefixed files (hash-checked already), under their own names."""
        prefix, entry = str(item.get("prefix", "")), item.get("estimator")
        with tempfile.TemporaryDirectory() as tmp:
            for name in filter(None, [item.get("pipeline"), *(entry or {}).get("files", [])]):
                if Path(name).name != name or prefix + name not in files:
                    raise IntegrityError(
                        f"ensemble member file {prefix + name!r} has no hash in {MANIFEST} in {directory}")
                shutil.copyfile(directory / (prefix + name), Path(tmp) / name)
            member = _load_skops(Path(tmp) / item["pipeline"], trusted) if item.get("pipeline") else None
            if entry:
                estimator = _codec_named(str(entry.get("codec"))).load(Path(tmp), entry, trusted)
                if member is None:
                    return estimator
                member.steps[-1] = (entry.get("step") or member.steps[-1][0], estimator)
        if member is None:
            raise IntegrityError(f"an ensemble member in {MANIFEST} in {directory} names no pipeline and no estimator")
        return member


CODECS.append(EnsembleCodec())


def _codec_requirements(entry: dict[str, Any] | None) -> list[str]:
    """Distributions the estimator entry's codecs need, ensemble members' included."""
    if not entry:
        return []
    uses = list(_codec_named(str(entry.get("codec"))).requirements)
    for item in entry.get("members", []):
        uses += _codec_requirements(item.get("estimator"))
    return list(dict.fromkeys(uses))


# ----------------------------------------------------------------------------- save


def _requirements(uses: list[str]) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    import forgeml

    reqs = [f"forgeml=={forgeml.__version__}"]
    for dist in ("scikit-learn", "skops", "numpy", "pandas", *uses):
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:  # pragma: no cover - every dist here is a forgeml dependency
            reqs.append(dist)
    return reqs


def _signature(model: ForgeModel, example: pd.DataFrame) -> Any:
    """MLflow signature from raw input rows (target dropped, at most SIGNATURE_ROWS rows).

    Integer columns become `any`: MLflow refuses both int64 -> double and float (NaN) -> long, and
    a value missing at predict time must reach forgeml's own schema check, not fail in MLflow's.
    """
    from mlflow.models import infer_signature

    sample = example.drop(columns=[model.target], errors="ignore").head(SIGNATURE_ROWS)
    signature = infer_signature(sample, model.predict_frame(sample, proba=True))
    try:
        from mlflow.types.schema import AnyType, ColSpec, Schema
    except ImportError:  # pragma: no cover - MLflow < 2.19 has no `any` type
        return signature
    types = pd.api.types
    ints = {c for c in sample.columns if types.is_integer_dtype(sample[c]) and not types.is_bool_dtype(sample[c])}
    if ints and signature.inputs is not None and signature.inputs.has_input_names():
        signature.inputs = Schema([
            ColSpec(AnyType(), spec.name, required=spec.required) if spec.name in ints else spec
            for spec in signature.inputs.inputs
        ])
    return signature


def _write_model_files(model: ForgeModel, directory: Path) -> dict[str, Any]:
    """Pipeline (and natively stored estimator) into `directory`; returns the manifest sans file list."""
    from sklearn.pipeline import Pipeline

    pipeline = model.pipeline
    estimator, step = pipeline, None
    if isinstance(pipeline, Pipeline):
        step, estimator = pipeline.steps[-1]
    codec = _codec_for(estimator)
    types: list[str] = []
    entry = None
    if codec is not None:
        entry, types = codec.save(estimator, directory)
        entry["step"] = step
        if step is None:
            pipeline = None
        else:
            pipeline = copy.copy(pipeline)
            pipeline.steps = [*pipeline.steps[:-1], (step, "passthrough")]
    if pipeline is not None:
        types += _dump_skops(pipeline, directory / PIPELINE_FILE, f"model '{model.name}'")
    import forgeml

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "forgeml_version": forgeml.__version__,
        "task": model.task,
        "target": model.target,
        "family": model.family,
        "params": jsonable(model.params),
        "classes": jsonable(model.classes),
        "schema": jsonable(model.schema.to_dict()),
        "metadata": jsonable(model.metadata),
        "pipeline": PIPELINE_FILE if pipeline is not None else None,
        "estimator": entry,
        "trusted_types": sorted(set(types)),
    }


def save_package(model: ForgeModel, path: Path, *, input_example: pd.DataFrame | None = None) -> dict[str, Any]:
    """Write `model` as a package at `path` (must not exist or be empty); returns the manifest.

    With `input_example` (raw input rows) the MLflow signature and input example are recorded too.
    """
    from forgeml.registry.store import quiet_mlflow

    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RegistryError(
            f"cannot save the model to '{path}': it exists and is not an empty folder; choose a new path"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    quiet_mlflow()
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        data_dir = staging / DATA_DIR
        data_dir.mkdir()
        manifest = _write_model_files(model, data_dir)
        manifest["files"] = [
            {"path": f.name, "sha256": sha256_file(f), "size": f.stat().st_size} for f in sorted(data_dir.iterdir())
        ]
        (data_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False), encoding="utf-8")
        _save_pyfunc(model, staging / "package", data_dir, input_example, manifest)
        if path.exists():
            path.rmdir()
        os.replace(staging / "package", path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.debug("saved model package %s (%d files)", path, len(manifest["files"]))
    return manifest


@contextmanager
def _lean_mlflow_save() -> Iterator[None]:
    """Skip what save_model would spend time on for nothing.

    MLflow re-checks our explicit requirements (read from this very environment) by scanning every
    installed distribution (~0.5 s), and copies uv.lock/pyproject.toml from the working directory
    into the model when it finds them. Neither belongs in a forgeml package.
    """
    import mlflow.utils.environment as mlflow_env

    original = getattr(mlflow_env, "warn_dependency_requirement_mismatches", None)
    uv_before = os.environ.get("MLFLOW_UV_AUTO_DETECT")
    os.environ["MLFLOW_UV_AUTO_DETECT"] = "false"
    if original is not None:
        mlflow_env.warn_dependency_requirement_mismatches = lambda *args, **kwargs: None
    try:
        yield
    finally:
        if original is not None:
            mlflow_env.warn_dependency_requirement_mismatches = original
        if uv_before is None:
            os.environ.pop("MLFLOW_UV_AUTO_DETECT", None)
        else:
            os.environ["MLFLOW_UV_AUTO_DETECT"] = uv_before


def _save_pyfunc(
    model: ForgeModel, out: Path, data_dir: Path, input_example: pd.DataFrame | None, manifest: dict[str, Any]
) -> None:
    import mlflow.pyfunc

    uses = _codec_requirements(manifest["estimator"])
    signature = example = None
    with warnings.catch_warnings(), _lean_mlflow_save():
        warnings.simplefilter("ignore")
        if input_example is not None:
            signature = _signature(model, input_example)
            example = input_example.drop(columns=[model.target], errors="ignore").head(EXAMPLE_ROWS)
        mlflow.pyfunc.save_model(
            path=str(out),
            loader_module=__name__,
            data_path=str(data_dir),
            signature=signature,
            input_example=example,
            pip_requirements=_requirements(uses),
        )


# ----------------------------------------------------------------------------- load


def _data_dir(path: Path) -> Path:
    for candidate in (path, path / "data" / DATA_DIR):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise IntegrityError(
        f"'{path}' is not a forgeml model package: no {MANIFEST} found in it or in its data/{DATA_DIR}"
    )


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the package at `path` (package root or its data folder), not yet verified."""
    file = _data_dir(Path(path)) / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"'{file}' is not readable JSON ({exc}); re-download or re-register the model") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise IntegrityError(f"'{file}' is not a forgeml package manifest (format {found!r}, expected {FORMAT!r})")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise IntegrityError(
            f"'{file}' uses package format {manifest['format_version']}, newer than this forgeml reads "
            f"({FORMAT_VERSION}); upgrade forgeml"
        )
    return manifest


def verify_files(data_dir: Path, manifest: dict[str, Any]) -> None:
    """Raise IntegrityError unless every file in the manifest is present with its recorded sha256."""
    for item in manifest.get("files", []):
        name, expected = str(item.get("path", "")), str(item.get("sha256", ""))
        if name in ("", ".", "..", MANIFEST) or Path(name).name != name:
            raise IntegrityError(f"{MANIFEST} in {data_dir} lists an invalid file name {name!r}")
        file = data_dir / name
        if not file.is_file():
            raise IntegrityError(
                f"'{name}' listed in {MANIFEST} is missing from {data_dir}; re-download or re-register the model"
            )
        actual = sha256_file(file)
        if actual != expected:
            raise IntegrityError(
                f"'{name}' in {data_dir} does not match its recorded hash (expected sha256 {expected[:12]}…, "
                f"found {actual[:12]}…); the package was modified or corrupted: re-download or re-register the model"
            )


def load_package(path: Path) -> ForgeModel:
    """Verify and load the package at `path` (package root or its data folder) into a ForgeModel."""
    from forgeml.data.schema import FeatureSchema
    from forgeml.model import ForgeModel

    data_dir = _data_dir(Path(path))
    manifest = read_manifest(data_dir)
    verify_files(data_dir, manifest)
    listed = {str(f["path"]) for f in manifest.get("files", [])}
    needed = [manifest.get("pipeline")] + list((manifest.get("estimator") or {}).get("files", []))
    for name in filter(None, needed):
        if name not in listed:
            raise IntegrityError(f"'{name}' is used by the model but has no hash in {MANIFEST} in {data_dir}")
    trusted = set(manifest.get("trusted_types", []))
    pipeline = _load_skops(data_dir / manifest["pipeline"], trusted) if manifest.get("pipeline") else None
    entry = manifest.get("estimator")
    if entry:
        estimator = _codec_named(str(entry.get("codec"))).load(data_dir, entry, trusted)
        if pipeline is None:
            pipeline = estimator
        else:
            step = entry.get("step") or pipeline.steps[-1][0]
            pipeline.steps[-1] = (step, estimator)
    if pipeline is None:
        raise IntegrityError(f"{MANIFEST} in {data_dir} names no pipeline and no estimator")
    return ForgeModel(
        pipeline=pipeline,
        task=manifest["task"],
        target=manifest["target"],
        schema=FeatureSchema.from_dict(manifest["schema"]),
        family=manifest["family"],
        params=manifest.get("params") or {},
        classes=manifest.get("classes"),
        metadata=manifest.get("metadata") or {},
    )


def package_hash(path: Path) -> str:
    """One sha256 digest for the package: the hash of its manifest, which lists every file's hash."""
    return sha256_file(_data_dir(Path(path)) / MANIFEST)


# ----------------------------------------------------------------------------- MLflow pyfunc


class _PyfuncModel:
    """What `mlflow.pyfunc.load_model` wraps: predictions as a frame (prediction, proba_<class>...)."""

    def __init__(self, model: ForgeModel):
        self.model = model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self.model.predict_frame(model_input, proba=True)


def _load_pyfunc(data_path: str) -> _PyfuncModel:
    """MLflow's entry point (loader_module): load the package whose data folder is `data_path`."""
    return _PyfuncModel(load_package(Path(data_path)))
