"""The MLflow-backed store: refs, runs, registration, resolution, aliases, downloads, pyfunc lineage."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from forgeml.errors import ModelNotFoundError, RegistryError
from forgeml.registry.package import save_package
from forgeml.registry.store import ModelVersionInfo, Store, parse_ref

HERE = Path(__file__).parent


# ----------------------------------------------------------------------------- parse_ref


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("churn", ("churn", None, None)),
        ("  churn ", ("churn", None, None)),
        ("churn@latest", ("churn", None, "latest")),
        ("churn@LATEST", ("churn", None, "latest")),
        ("churn@champion", ("churn", None, "champion")),
        ("churn/3", ("churn", 3, None)),
        ("churn/latest", ("churn", None, "latest")),
        ("models:/churn/12", ("churn", 12, None)),
        ("models:/churn@prod-2", ("churn", None, "prod-2")),
        ("my.model_v-2", ("my.model_v-2", None, None)),
    ],
)
def test_parse_ref_forms(ref, expected):
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "   ", "@x", "churn@", "churn/", "churn/0", "churn/x", "churn/1/2",
                                 "churn@a@b", "churn@bad alias", "runs:/abc/model", "models:/", None])
def test_parse_ref_rejects_malformed_refs(ref):
    with pytest.raises(ModelNotFoundError, match="malformed model reference"):
        parse_ref(ref)


# ----------------------------------------------------------------------------- resolution of the store


def test_embedded_store_lives_in_forgeml_home(tmp_path, monkeypatch, template_db):
    home = tmp_path / "fresh-home"
    monkeypatch.setenv("FORGEML_HOME", str(home))
    store = Store()
    assert store.home == home.resolve()
    assert store.tracking_uri == f"sqlite:///{(home / 'mlflow.db').resolve().as_posix()}"
    assert store.artifact_location == (home / "artifacts").resolve().as_uri()
    assert not home.exists()  # nothing happens until first use
    home.mkdir()
    (home / "mlflow.db").write_bytes(template_db.read_bytes())
    assert store.experiment_id
    assert (home / "artifacts").is_dir()
    assert store.client.get_experiment(store.experiment_id).artifact_location == store.artifact_location


def test_tracking_uri_env_wins_and_credentials_are_masked(monkeypatch):
    monkeypatch.setenv("FORGEML_TRACKING_URI", "postgresql://bob:s3cret@db.example/mlflow")
    store = Store()
    assert store.tracking_uri == "postgresql://bob:s3cret@db.example/mlflow"
    assert store.home is None and store.artifact_location is None
    assert "s3cret" not in repr(store) and "s3cret" not in store.describe()
    assert Store("http://localhost:5000").tracking_uri == "http://localhost:5000"


# ----------------------------------------------------------------------------- runs


def test_run_logs_and_finishes(store, tmp_path, caplog):
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "b.txt").write_text("B")
    with store.start_run("logging", tags={"purpose": "test"}) as run:
        run.log_params({"lr": 0.1, "model": {"depth": 3, "kind": None}, "long": "x" * 7000})
        run.log_params({"lr": 0.1})  # same value again: fine
        run.log_metrics({"auc": np.float64(0.9), "nan": float("nan"), "inf": float("inf"), "fold": {"1": 0.5}}, step=2)
        run.log_dict({"n": np.int64(3), "arr": np.arange(2)}, "info/summary.json")
        run.log_dict({"a": 1}, "spec.yaml")
        run.log_text("hello", "notes.txt")
        run.log_artifact(tmp_path / "a.txt")
        run.log_artifacts(tmp_path / "folder", "extra")
        run.set_tags({"stage": "done"})
    assert "metric 'nan' is nan; not logged" in caplog.text and "metric 'inf' is inf" in caplog.text

    info = store.get_run(run.run_id)
    assert info["status"] == "FINISHED" and info["run_name"] == "logging"
    assert info["params"]["lr"] == "0.1" and info["params"]["model.depth"] == "3"
    assert info["params"]["model.kind"] == "None" and len(info["params"]["long"]) == 6000
    assert info["metrics"] == {"auc": 0.9, "fold.1": 0.5}
    assert info["tags"]["purpose"] == "test" and info["tags"]["stage"] == "done"
    assert info["start_time"] <= info["end_time"]
    root = Path(info["artifact_uri"].removeprefix("file://"))
    assert json.loads((root / "info" / "summary.json").read_text()) == {"n": 3, "arr": [0, 1]}
    assert (root / "spec.yaml").read_text() == "a: 1\n"
    assert (root / "notes.txt").read_text() == "hello"
    assert (root / "a.txt").is_file() and (root / "extra" / "b.txt").is_file()


def test_run_is_deleted_when_its_body_raises(store):
    from mlflow.entities import ViewType

    with pytest.raises(ValueError, match="boom"):
        with store.start_run("doomed") as run:
            run.log_params({"a": 1})
            run.log_text("partial", "partial.txt")
            raise ValueError("boom")
    active = store.client.search_runs([store.experiment_id], run_view_type=ViewType.ACTIVE_ONLY)
    assert run.run_id not in {r.info.run_id for r in active}
    assert store.get_run(run.run_id)["lifecycle_stage"] == "deleted"
    assert not Path(run.artifact_uri.removeprefix("file://")).exists()


def test_get_run_unknown_id(store):
    with pytest.raises(RegistryError, match="run 'nope' not found"):
        store.get_run("nope")


# ----------------------------------------------------------------------------- registration


@pytest.fixture(scope="module")
def package(sk_model, cancer, tmp_path_factory) -> Path:
    X, _ = cancer
    path = tmp_path_factory.mktemp("pkg") / "model"
    save_package(sk_model, path, input_example=X)
    return path


@pytest.fixture(scope="module")
def registered(store, package):
    """'cancer' with versions 1 and 2, alias champion -> 1."""
    runs = []
    for _ in range(2):
        with store.start_run("cancer") as run:
            version = store.register("cancer", package, run, description="breast cancer", tags={"team": "ml"})
            runs.append(run.run_id)
        assert version == len(runs)
    store.set_alias("cancer", 1, "champion")
    return runs


def test_register_twice_gives_versions_with_lineage(store, registered, package):
    from forgeml.registry.package import package_hash

    versions = store.versions("cancer")
    assert [v.version for v in versions] == [1, 2]
    v2 = versions[1]
    assert v2.run_id == registered[1] and v2.source.endswith(f"/{registered[1]}/artifacts/model")
    assert v2.status == "READY" and v2.description == "breast cancer"
    assert v2.tags["team"] == "ml" and v2.tags["forgeml.package_sha256"] == package_hash(package)
    assert v2.created is not None and v2.created.tzinfo is not None
    assert store.get_run(v2.run_id)["status"] == "FINISHED"


@pytest.mark.parametrize(
    ("ref", "version"),
    [("cancer", 2), ("cancer@latest", 2), ("cancer/1", 1), ("models:/cancer/2", 2),
     ("cancer@champion", 1), ("models:/cancer@champion", 1)],
)
def test_resolve(store, registered, ref, version):
    info = store.resolve(ref)
    assert isinstance(info, ModelVersionInfo) and info.name == "cancer" and info.version == version
    assert info.aliases == (["champion"] if version == 1 else [])


def test_resolve_unknown_model_suggests_a_name(store, registered):
    with pytest.raises(ModelNotFoundError, match=r"model 'cancr' not found in .*; did you mean 'cancer'\?"):
        store.resolve("cancr@latest")
    with pytest.raises(ModelNotFoundError, match=r"model 'zzz' not found .*\(registered: cancer"):
        store.resolve("zzz")


def test_resolve_in_an_empty_registry(fresh_store):
    with pytest.raises(ModelNotFoundError, match=r"no models registered yet.*train one with `forgeml train"):
        fresh_store.resolve("churn")
    assert fresh_store.list_models() == []


def test_resolve_unknown_version_lists_versions(store, registered):
    with pytest.raises(ModelNotFoundError, match=r"model 'cancer' has no version 9; existing versions: 1, 2$"):
        store.resolve("cancer/9")


def test_resolve_unknown_alias_lists_aliases(store, registered):
    with pytest.raises(ModelNotFoundError, match=r"has no alias 'staging'; existing aliases: champion \(v1\)$"):
        store.resolve("cancer@staging")
    with pytest.raises(ModelNotFoundError, match=r"did you mean 'champion'\?"):
        store.resolve("cancer@champoin")


@pytest.mark.parametrize("alias", ["latest", "Latest", "42", "v3", "bad alias", "", "é"])
def test_set_alias_validates_the_alias(store, registered, alias):
    with pytest.raises(RegistryError, match="alias"):
        store.set_alias("cancer", 1, alias)


def test_set_move_and_delete_alias(store, registered):
    with pytest.raises(ModelNotFoundError, match="has no version 7; existing versions: 1, 2"):
        store.set_alias("cancer", 7, "prod")
    store.set_alias("cancer", 2, "prod")
    assert store.resolve("cancer@prod").version == 2
    store.set_alias("cancer", 1, "prod")  # moves
    assert store.resolve("cancer@prod").version == 1
    store.delete_alias("cancer", "prod")
    with pytest.raises(ModelNotFoundError, match="has no alias 'prod'"):
        store.resolve("cancer@prod")
    with pytest.raises(ModelNotFoundError, match="has no alias 'prod'; existing aliases: champion"):
        store.delete_alias("cancer", "prod")


def test_list_models(store, registered):
    rows = {row["name"]: row for row in store.list_models()}
    row = rows["cancer"]
    assert row["latest_version"] == 2 and row["aliases"] == {"champion": 1}
    assert row["updated"] is not None and set(row) == {"name", "latest_version", "aliases", "updated", "description"}


def test_register_rejects_bad_input(store, registered, tmp_path):
    with store.start_run("bad") as run:
        with pytest.raises(RegistryError, match="invalid model name"):
            store.register("bad name!", tmp_path, run)
        with pytest.raises(RegistryError, match="not a saved model package"):
            store.register("fine", tmp_path, run)


def test_failed_version_creation_leaves_nothing(store, registered, package, monkeypatch):
    from mlflow.exceptions import MlflowException

    def fail(*args, **kwargs):
        raise MlflowException("disk on fire")

    with store.start_run("ghost") as run, monkeypatch.context() as mp:
        mp.setattr(store.client, "create_model_version", fail)
        with pytest.raises(RegistryError, match="registering model 'ghost' failed .*disk on fire"):
            store.register("ghost", package, run)
    assert "ghost" not in {row["name"] for row in store.list_models()}


def test_failed_run_removes_the_versions_it_registered(store, registered, package):
    with pytest.raises(RuntimeError):
        with store.start_run("half") as run:
            store.register("cancer", package, run)
            raise RuntimeError("evaluation crashed after registration")
    assert [v.version for v in store.versions("cancer")] == [1, 2]
    assert store.resolve("cancer").version == 2


# ----------------------------------------------------------------------------- download and load


def test_download_embedded_returns_the_artifact_folder(store, registered):
    info = store.resolve("cancer/1")
    path = store.download(info)
    assert (path / "MLmodel").is_file() and path.as_uri() == info.source
    assert store.home / "artifacts" in path.parents


def test_download_remote_source_goes_through_the_cache(store, registered):
    info = dataclasses.replace(store.resolve("cancer/2"), source=f"runs:/{registered[1]}/model")
    path = store.download(info)
    assert path == store.home / "cache" / "cancer" / "2" and (path / "MLmodel").is_file()
    assert store.download(info) == path  # cached


def test_load_model_fills_in_registry_metadata(store, registered, sk_model, cancer):
    X, _ = cancer
    model = store.load_model("cancer@champion")
    assert model.version == 1 and model.name == "cancer" and model.metadata["aliases"] == ["champion"]
    assert model.metadata["run_id"] == registered[0]
    assert np.array_equal(model.predict_proba(X).to_numpy(), sk_model.predict_proba(X).to_numpy())


def test_mlflow_loads_the_registered_model_in_a_fresh_process(store, registered, sk_model, cancer, tmp_path):
    X, _ = cancer
    X.head(50).to_parquet(tmp_path / "input.parquet")
    code = (
        "import sys, numpy as np, pandas as pd, pytest\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "import conftest\n"
        "conftest.install_stub_schema(pytest.MonkeyPatch())\n"
        "import mlflow.pyfunc\n"
        "model = mlflow.pyfunc.load_model('models:/cancer/1')\n"
        f"out = model.predict(pd.read_parquet({str(tmp_path / 'input.parquet')!r}))\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, out.to_numpy(dtype=float))\n"
        "print(','.join(out.columns))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.tracking_uri, "MLFLOW_REGISTRY_URI": store.tracking_uri}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "prediction,proba_0,proba_1"
    expected = sk_model.predict_frame(X.head(50), proba=True).to_numpy(dtype=float)
    got = np.load(tmp_path / "out.npy")
    assert np.array_equal(got[:, 0], expected[:, 0])
    # MLflow's schema enforcement rebuilds the frame column by column; the changed memory layout
    # can move BLAS sums by an ulp, so probabilities are compared to 1e-12, not bitwise.
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
