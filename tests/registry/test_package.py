"""The saved model package: safe format, bitwise round trips, integrity checks, MLflow pyfunc layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from forgeml.errors import IntegrityError, RegistryError
from forgeml.registry.package import (
    MANIFEST,
    _load_pyfunc,
    jsonable,
    load_package,
    package_hash,
    read_manifest,
    save_package,
)


class ForeignScaler(TransformerMixin, BaseEstimator):
    """A transformer from a module outside the trusted packages (this test module)."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


@pytest.fixture(scope="module")
def sk_package(sk_model, cancer, tmp_path_factory) -> Path:
    X, _ = cancer
    path = tmp_path_factory.mktemp("pkg") / "model"
    save_package(sk_model, path, input_example=X)
    return path


def _data_dir(path: Path) -> Path:
    return path / "data" / "forgeml"


def test_layout_is_an_mlflow_pyfunc_model_with_our_manifest(sk_package, sk_model):
    import yaml

    assert (sk_package / "MLmodel").is_file()
    assert (_data_dir(sk_package) / MANIFEST).is_file()
    mlmodel = yaml.safe_load((sk_package / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["python_function"]
    assert flavor["loader_module"] == "forgeml.registry.package"
    assert flavor["data"] == "data/forgeml"
    assert "signature" in mlmodel and (sk_package / "input_example.json").is_file()
    assert not list(sk_package.rglob("*.pkl")) and not list(sk_package.rglob("*.pickle"))
    requirements = (sk_package / "requirements.txt").read_text().splitlines()
    assert any(r.startswith("forgeml==") for r in requirements)
    assert any(r.startswith("scikit-learn==") for r in requirements)

    manifest = read_manifest(sk_package)
    assert manifest["format_version"] == 1 and manifest["task"] == "classification"
    assert manifest["classes"] == [0, 1] and manifest["schema"] == sk_model.schema.to_dict()
    assert {f["path"] for f in manifest["files"]} == {"pipeline.skops"}
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in manifest["files"])
    assert all(t.startswith(("numpy", "sklearn")) for t in manifest["trusted_types"])
    json.dumps(manifest)  # JSON-safe throughout


def test_sklearn_round_trip_is_bitwise_identical(sk_package, sk_model, cancer):
    X, _ = cancer
    loaded = load_package(sk_package)
    assert np.array_equal(loaded.predict(X), sk_model.predict(X))
    assert np.array_equal(loaded.predict_proba(X).to_numpy(), sk_model.predict_proba(X).to_numpy())
    assert loaded.family == sk_model.family and loaded.target == "target" and loaded.name == "cancer"
    assert loaded.schema.columns == sk_model.schema.columns


def _lightgbm_models(cancer, make_model):
    import lightgbm as lgb
    from sklearn.datasets import load_diabetes, load_iris

    X, y = cancer
    gbm = lgb.LGBMClassifier(n_estimators=30, verbose=-1, n_jobs=1)
    binary = Pipeline([("prepare", StandardScaler()), ("model", gbm)])
    yield "binary", make_model(binary.fit(X, y), X, classes=[0, 1], family="lightgbm"), X

    Xi, yi = load_iris(return_X_y=True, as_frame=True)
    yi = yi.map({0: "setosa", 1: "versicolor", 2: "virginica"})
    weights = {"setosa": 2.0, "versicolor": 1.0, "virginica": 1.0}
    est = lgb.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1, class_weight=weights)
    multi = Pipeline([("prepare", FunctionTransformer()), ("model", est)]).fit(Xi, yi)
    yield "multiclass", make_model(multi, Xi, classes=list(est.classes_), family="lightgbm"), Xi

    Xd, yd = load_diabetes(return_X_y=True, as_frame=True)
    reg = Pipeline([("prepare", StandardScaler()), ("model", lgb.LGBMRegressor(n_estimators=40, verbose=-1, n_jobs=1))])
    yield "regression", make_model(reg.fit(Xd, yd), Xd, task="regression", family="lightgbm"), Xd


def test_lightgbm_round_trips_are_bitwise_identical(cancer, make_model, tmp_path):
    import lightgbm as lgb

    for label, model, X in _lightgbm_models(cancer, make_model):
        path = tmp_path / label
        manifest = save_package(model, path, input_example=X)
        assert manifest["estimator"]["codec"] == "lightgbm"
        files = {f["path"] for f in manifest["files"]}
        assert files == {"pipeline.skops", "estimator.lgbm.txt", "estimator.skops"}
        assert (_data_dir(path) / "estimator.lgbm.txt").read_text().startswith("tree")
        loaded = load_package(path)
        assert type(loaded.estimator) is type(model.estimator)
        assert isinstance(loaded.estimator.booster_, lgb.Booster)
        assert np.array_equal(loaded.predict(X), model.predict(X)), label
        if model.task == "classification":
            assert np.array_equal(loaded.pipeline.predict_proba(X), model.pipeline.predict_proba(X)), label
            assert list(loaded.estimator.classes_) == list(model.estimator.classes_)


def test_lightgbm_nested_in_an_ensemble_round_trips(cancer, make_model, tmp_path):
    """Only the final estimator is split out natively; a nested LightGBM goes through skops safely."""
    import lightgbm as lgb
    from sklearn.ensemble import VotingClassifier

    X, y = cancer
    vote = VotingClassifier([("gbm", lgb.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1)),
                             ("tree", DecisionTreeClassifier(max_depth=3))], voting="soft")
    model = make_model(Pipeline([("prepare", StandardScaler()), ("model", vote)]).fit(X, y), X, classes=[0, 1])
    manifest = save_package(model, tmp_path / "vote")
    assert manifest["estimator"] is None and "lightgbm.basic.Booster" in manifest["trusted_types"]
    loaded = load_package(tmp_path / "vote")
    assert np.array_equal(loaded.pipeline.predict_proba(X), model.pipeline.predict_proba(X))


def test_pyfunc_loader_returns_prediction_and_proba_columns(sk_package, sk_model, cancer):
    X, _ = cancer
    out = _load_pyfunc(str(_data_dir(sk_package))).predict(X.head(10))
    assert list(out.columns) == ["prediction", "proba_0", "proba_1"]
    assert np.array_equal(out["prediction"].to_numpy(), sk_model.predict(X.head(10)))

    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(str(sk_package))  # through MLflow, signature enforced
    pd.testing.assert_frame_equal(pyfunc.predict(X.head(10)), out)


def _copy_package(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_tampered_file_is_refused(sk_package, tmp_path):
    path = _copy_package(sk_package, tmp_path / "tampered")
    target = _data_dir(path) / "pipeline.skops"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    expected = r"'pipeline.skops' .* recorded hash \(expected sha256 [0-9a-f]{12}…, found [0-9a-f]{12}…\)"
    with pytest.raises(IntegrityError, match=expected):
        load_package(path)


def test_missing_file_is_refused(sk_package, tmp_path):
    path = _copy_package(sk_package, tmp_path / "incomplete")
    (_data_dir(path) / "pipeline.skops").unlink()
    with pytest.raises(IntegrityError, match="'pipeline.skops' listed in forgeml.json is missing"):
        load_package(path)


def test_not_a_package_is_refused(tmp_path):
    with pytest.raises(IntegrityError, match="not a forgeml model package"):
        load_package(tmp_path)


def test_foreign_type_is_refused_at_save(cancer, make_model, tmp_path):
    X, y = cancer
    pipe = Pipeline([("prepare", ForeignScaler()), ("model", DecisionTreeClassifier(max_depth=2))]).fit(X, y)
    with pytest.raises(IntegrityError, match="ForeignScaler' is outside the trusted packages"):
        save_package(make_model(pipe, X, classes=[0, 1]), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_foreign_type_is_refused_at_load_even_with_a_rewritten_manifest(sk_package, cancer, tmp_path):
    """An attacker who swaps the skops file and rewrites the manifest's hashes still gets nothing loaded."""
    import hashlib

    import skops.io as sio

    X, y = cancer
    path = _copy_package(sk_package, tmp_path / "evil")
    data_dir = _data_dir(path)
    evil = Pipeline([("prepare", ForeignScaler()), ("model", DecisionTreeClassifier(max_depth=2))]).fit(X, y)
    sio.dump(evil, data_dir / "pipeline.skops")
    manifest = json.loads((data_dir / MANIFEST).read_text())
    manifest["files"] = [{"path": "pipeline.skops", "size": 0,
                          "sha256": hashlib.sha256((data_dir / "pipeline.skops").read_bytes()).hexdigest()}]
    manifest["trusted_types"] = sio.get_untrusted_types(file=data_dir / "pipeline.skops")
    (data_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=r"holds type '.*ForeignScaler' from outside the trusted packages"):
        load_package(path)


def test_type_missing_from_manifest_is_refused(cancer, make_model, tmp_path):
    from sklearn.impute import SimpleImputer

    X, y = cancer
    pipe = Pipeline([("prepare", SimpleImputer()), ("model", DecisionTreeClassifier(max_depth=2))]).fit(X, y)
    manifest = save_package(make_model(pipe, X, classes=[0, 1]), tmp_path / "m")
    assert "numpy.dtype" in manifest["trusted_types"]
    manifest_file = _data_dir(tmp_path / "m") / MANIFEST
    manifest["trusted_types"] = []
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="holds type 'numpy.dtype' that forgeml.json does not list"):
        load_package(tmp_path / "m")


def test_package_hash_is_the_manifest_digest(sk_package, tmp_path):
    digest = package_hash(sk_package)
    assert len(digest) == 64 and digest == package_hash(_data_dir(sk_package))
    path = _copy_package(sk_package, tmp_path / "edited")
    manifest_file = _data_dir(path) / MANIFEST
    manifest_file.write_text(manifest_file.read_text().replace('"cancer"', '"renamed"'))
    assert package_hash(path) != digest


def test_save_refuses_a_non_empty_folder(sk_model, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("x")
    with pytest.raises(RegistryError, match="exists and is not an empty folder"):
        save_package(sk_model, tmp_path / "taken")
    manifest = save_package(sk_model, tmp_path / "empty")  # no example: no signature, still loadable
    assert manifest["files"] and load_package(tmp_path / "empty").classes == [0, 1]


def test_jsonable_converts_numpy_and_friends():
    from datetime import datetime

    value = {"a": np.int64(3), "b": np.array([1.5, np.nan]), "c": {np.str_("k"): np.bool_(True)},
             "d": (Path("/x"), datetime(2024, 1, 2)), "e": float("inf")}
    expected = {"a": 3, "b": [1.5, None], "c": {"k": True}, "d": ["/x", "2024-01-02T00:00:00"], "e": None}
    assert jsonable(value) == expected


def test_importing_the_registry_stays_light():
    code = (
        "import sys, forgeml.registry.store, forgeml.registry.package\n"
        "heavy = [m for m in ('mlflow', 'skops', 'lightgbm', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_signature_lets_integer_columns_take_missing_values(make_model, tmp_path):
    import mlflow.pyfunc
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    df = pd.DataFrame({"age": [20, 30, 40, 50, 60, 70] * 5, "city": ["a", "b", "c", "a", "b", "c"] * 5,
                       "target": [0, 1, 0, 1, 1, 0] * 5})
    prepare = ColumnTransformer([("num", SimpleImputer(), ["age"]), ("cat", OneHotEncoder(), ["city"])])
    pipe = Pipeline([("prepare", prepare), ("model", DecisionTreeClassifier(max_depth=2))])
    pipe.fit(df[["age", "city"]], df["target"])
    save_package(make_model(pipe, df[["age", "city"]], classes=[0, 1]), tmp_path / "m", input_example=df)
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    assert pyfunc.metadata.get_input_schema().input_names() == ["age", "city"]  # target left out
    assert len(pyfunc.predict(df.head(3))) == 3  # int64 accepted
    assert len(pyfunc.predict(pd.DataFrame({"age": [np.nan, 30.0], "city": ["a", "b"]}))) == 2  # and NaN


# ----------------------------------------------------------------------------- CatBoost and XGBoost


BOOSTING = {"catboost": "estimator.cbm", "xgboost": "estimator.ubj"}


def _boosted(library: str, task: str, **params):
    from forgeml.models.zoo import get_family

    threads = {"thread_count": 1} if library == "catboost" else {"n_jobs": 1}
    return get_family(library).make(task, {"n_estimators": 40, **threads, **params}, seed=0)


def _boosted_models(library, cancer, make_model):
    """Fitted (label, ForgeModel, X) of `library`: binary with 0/1 labels, multiclass with string labels, regression."""
    from sklearn.datasets import load_diabetes, load_iris

    X, y = cancer
    binary = Pipeline([("prepare", StandardScaler()), ("model", _boosted(library, "classification"))]).fit(X, y)
    yield "binary", make_model(binary, X, classes=[0, 1], family=library), X

    Xi, yi = load_iris(return_X_y=True, as_frame=True)
    yi = yi.map({0: "setosa", 1: "versicolor", 2: "virginica"})
    multi = Pipeline([("prepare", FunctionTransformer()), ("model", _boosted(library, "classification"))]).fit(Xi, yi)
    yield "multiclass", make_model(multi, Xi, classes=["setosa", "versicolor", "virginica"], family=library), Xi

    Xd, yd = load_diabetes(return_X_y=True, as_frame=True)
    reg = Pipeline([("prepare", StandardScaler()), ("model", _boosted(library, "regression"))]).fit(Xd, yd)
    yield "regression", make_model(reg, Xd, task="regression", family=library), Xd


@pytest.mark.parametrize("library", list(BOOSTING))
def test_boosting_round_trips_are_bitwise_identical_in_native_format(library, cancer, make_model, tmp_path):
    from forgeml.models.boosting import library_of

    for label, model, X in _boosted_models(library, cancer, make_model):
        path = tmp_path / label
        manifest = save_package(model, path, input_example=X)
        entry = manifest["estimator"]
        assert entry["codec"] == library and entry["n_estimators"] == 40
        assert entry["model_class"].startswith(library + ".") and entry["class"].startswith("forgeml.models.boosting.")
        assert {f["path"] for f in manifest["files"]} == {"pipeline.skops", BOOSTING[library], "estimator.skops"}
        assert all(t.startswith(("numpy", "sklearn", "builtins")) for t in manifest["trusted_types"]), manifest["trusted_types"]
        assert not list(path.rglob("*.pkl"))
        requirements = (path / "requirements.txt").read_text()
        assert f"{'catboost' if library == 'catboost' else 'xgboost-cpu'}==" in requirements and "lightgbm" not in requirements
        loaded = load_package(path)
        assert type(loaded.estimator) is type(model.estimator) and library_of(loaded.estimator.estimator_) == library
        assert loaded.estimator.n_estimators_ == 40
        assert np.array_equal(loaded.predict(X), model.predict(X)), label
        if model.task == "classification":
            assert list(loaded.estimator.classes_) == list(model.estimator.classes_), label
            assert np.array_equal(loaded.pipeline.predict_proba(X), model.pipeline.predict_proba(X)), label


@pytest.mark.parametrize("library", list(BOOSTING))
def test_boosting_tampered_model_file_and_foreign_class_are_refused(library, cancer, make_model, tmp_path):
    X, y = cancer
    pipe = Pipeline([("prepare", StandardScaler()), ("model", _boosted(library, "classification"))]).fit(X, y)
    save_package(make_model(pipe, X, classes=[0, 1], family=library), tmp_path / "m")
    tampered = _copy_package(tmp_path / "m", tmp_path / "tampered")
    file = _data_dir(tampered) / BOOSTING[library]
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"'{BOOSTING[library]}' .* does not match its recorded hash"):
        load_package(tampered)

    foreign = _copy_package(tmp_path / "m", tmp_path / "foreign")
    manifest_file = _data_dir(foreign) / MANIFEST
    manifest = json.loads(manifest_file.read_text())
    manifest["estimator"]["model_class"] = "os.system"
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=f"unexpected {library} estimator .* holding 'os.system'"):
        load_package(foreign)


def test_boosting_nested_in_an_ensemble_saves_native_bytes_through_skops(cancer, make_model, tmp_path):
    """A wrapper inside another estimator goes through skops: its state holds the native model as bytes."""
    from sklearn.ensemble import VotingClassifier

    X, y = cancer
    vote = VotingClassifier([("cat", _boosted("catboost", "classification")),
                             ("xgb", _boosted("xgboost", "classification"))], voting="soft")
    model = make_model(Pipeline([("prepare", StandardScaler()), ("model", vote)]).fit(X, y), X, classes=[0, 1])
    manifest = save_package(model, tmp_path / "vote")
    assert manifest["estimator"] is None
    assert not [t for t in manifest["trusted_types"] if t.startswith(("catboost", "xgboost"))]
    loaded = load_package(tmp_path / "vote")
    assert np.array_equal(loaded.pipeline.predict_proba(X), model.pipeline.predict_proba(X))


def test_boosting_packages_load_identically_in_a_fresh_process(cancer, make_model, tmp_path):
    from sklearn.datasets import load_iris

    Xi, yi = load_iris(return_X_y=True, as_frame=True)
    yi = yi.map({0: "setosa", 1: "versicolor", 2: "virginica"})
    Xi.to_parquet(tmp_path / "input.parquet")
    expected = {}
    for library in BOOSTING:
        pipe = Pipeline([("prepare", StandardScaler()), ("model", _boosted(library, "classification"))]).fit(Xi, yi)
        model = make_model(pipe, Xi, classes=["setosa", "versicolor", "virginica"], family=library)
        save_package(model, tmp_path / library)
        expected[library] = model
    code = (
        "import sys, numpy as np, pandas as pd, pytest\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import conftest\n"
        "conftest.install_stub_schema(pytest.MonkeyPatch())\n"
        "from forgeml.registry.package import load_package\n"
        f"X = pd.read_parquet({str(tmp_path / 'input.parquet')!r})\n"
        f"for library in {list(BOOSTING)!r}:\n"
        f"    model = load_package({str(tmp_path)!r} + '/' + library)\n"
        f"    np.save({str(tmp_path)!r} + f'/{{library}}-proba.npy', model.predict_proba(X).to_numpy())\n"
        f"    np.save({str(tmp_path)!r} + f'/{{library}}-labels.npy', model.predict(X).astype(str))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for library, model in expected.items():
        labels = np.load(tmp_path / f"{library}-labels.npy")
        assert set(labels) == {"setosa", "versicolor", "virginica"}
        np.testing.assert_array_equal(labels, model.predict(Xi).astype(str))
        np.testing.assert_array_equal(np.load(tmp_path / f"{library}-proba.npy"), model.predict_proba(Xi).to_numpy())
