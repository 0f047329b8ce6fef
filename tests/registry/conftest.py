"""Fixtures for the registry tests: a stand-in FeatureSchema, fitted models, and stores in tmp homes."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from forgeml.errors import SchemaError


class StubSchema:
    """Stand-in for forgeml.data.schema.FeatureSchema (written elsewhere): column names only."""

    def __init__(self, columns):
        self.columns = [str(c) for c in columns]

    def to_dict(self) -> dict:
        return {"columns": self.columns}

    @classmethod
    def from_dict(cls, data: dict) -> StubSchema:
        return cls(data["columns"])

    def validate(self, df: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise SchemaError(f"missing columns {missing}")
        return df[self.columns]


def install_stub_schema(mp: pytest.MonkeyPatch) -> None:
    """Make `from forgeml.data.schema import FeatureSchema` give StubSchema (also used in subprocesses)."""
    try:
        import forgeml.data.schema as module
    except Exception:  # noqa: BLE001 - absent or half-written while the other module is in progress
        module = types.ModuleType("forgeml.data.schema")
        mp.setitem(sys.modules, "forgeml.data.schema", module)
    mp.setattr(module, "FeatureSchema", StubSchema, raising=False)


@pytest.fixture(scope="module", autouse=True)
def stub_schema():
    with pytest.MonkeyPatch.context() as mp:
        install_stub_schema(mp)
        yield StubSchema


# ----------------------------------------------------------------------------- data and models


@pytest.fixture(scope="session")
def cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


def build_model(pipeline, X, *, task="classification", classes=None, family="logistic_regression", name="x"):
    """A ForgeModel around a fitted pipeline, with a StubSchema of X's columns."""
    from forgeml.model import ForgeModel

    return ForgeModel(
        pipeline=pipeline,
        task=task,
        target="target",
        schema=StubSchema(X.columns),
        family=family,
        params={"C": 1.0},
        classes=classes,
        metadata={"name": name},
    )


@pytest.fixture(scope="session")
def make_model():
    return build_model


@pytest.fixture(scope="session")
def sk_model(cancer):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = cancer
    pipe = Pipeline([("prepare", StandardScaler()), ("model", LogisticRegression(max_iter=500))]).fit(X, y)
    return build_model(pipe, X, classes=[0, 1], name="cancer")


# ----------------------------------------------------------------------------- stores


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """An empty, migrated MLflow database: copying it spares each fresh store the ~1 s of migrations."""
    from forgeml.registry.store import Store

    folder = tmp_path_factory.mktemp("template")
    Store(f"sqlite:///{(folder / 'mlflow.db').as_posix()}").client.search_experiments()
    return folder / "mlflow.db"


def new_home(folder: Path, template_db: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(template_db, folder / "mlflow.db")
    return folder


@pytest.fixture(scope="module")
def module_home(tmp_path_factory, template_db) -> Path:
    return new_home(tmp_path_factory.mktemp("forgeml-home"), template_db)


@pytest.fixture(autouse=True)
def _home_env(module_home, monkeypatch):
    """Every test runs with FORGEML_HOME in a tmp folder and no FORGEML_TRACKING_URI."""
    monkeypatch.setenv("FORGEML_HOME", str(module_home))
    monkeypatch.delenv("FORGEML_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def store(module_home):
    """One store per test module (MLflow's SQLite store costs a few hundred ms to open)."""
    from forgeml.registry.store import Store

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FORGEML_HOME", str(module_home))
        mp.delenv("FORGEML_TRACKING_URI", raising=False)
        return Store()


@pytest.fixture
def fresh_store(tmp_path, template_db, monkeypatch):
    """A store with nothing registered, in its own FORGEML_HOME."""
    from forgeml.registry.store import Store

    home = new_home(tmp_path / "home", template_db)
    monkeypatch.setenv("FORGEML_HOME", str(home))
    return Store()
