"""Neural models in the saved package: safetensors weights + JSON state, identical predictions after
loading (in this process and a fresh one), allow-listed classes only, tampering refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors")

from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from forgeml.errors import IntegrityError
from forgeml.models.neural import (
    AutoencoderTransformer,
    NeuralClassifier,
    NeuralRegressor,
)
from forgeml.registry.package import (
    MANIFEST,
    TorchCodec,
    _load_pyfunc,
    load_package,
    read_manifest,
    save_package,
)

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def mlp_model(cancer, make_model):
    X, y = cancer
    labels = y.map({0: "malignant", 1: "benign"})
    net = NeuralClassifier(hidden_sizes=(32, 16), epochs=5, random_state=0)
    pipe = Pipeline([("prepare", StandardScaler()), ("model", net)]).fit(X, labels)
    return make_model(pipe, X, classes=["benign", "malignant"], family="mlp", name="cancer-mlp")


@pytest.fixture(scope="module")
def mlp_package(mlp_model, cancer, tmp_path_factory) -> Path:
    X, _ = cancer
    path = tmp_path_factory.mktemp("neural") / "model"
    save_package(mlp_model, path, input_example=X)
    return path


def test_layout_weights_in_safetensors_state_in_json(mlp_package):
    data = mlp_package / "data" / "forgeml"
    manifest = read_manifest(mlp_package)
    entry = manifest["estimator"]
    assert entry["codec"] == "torch" and entry["class"] == "forgeml.models.neural.NeuralClassifier"
    assert entry["net"] == "forgeml.models.nets.mlp.MLP" and entry["step"] == "model"
    assert {f["path"] for f in manifest["files"]} == {"pipeline.skops", "estimator.safetensors", "estimator.torch.json"}
    assert not list(mlp_package.rglob("*.pkl")) and not list(mlp_package.rglob("*.pt"))
    state = json.loads((data / "estimator.torch.json").read_text())
    assert state["params"]["hidden_sizes"] == [32, 16] and state["fitted"]["classes_"]["ndarray"] == ["benign", "malignant"]
    assert state["net"]["kwargs"]["n_numeric"] == 30 and len(state["fitted"]["history_"]) == 5
    requirements = (mlp_package / "requirements.txt").read_text()
    assert "torch==" in requirements and "safetensors==" in requirements and "lightgbm" not in requirements


def test_round_trip_predicts_identically(mlp_package, mlp_model, cancer):
    X, _ = cancer
    loaded = load_package(mlp_package)
    estimator = loaded.estimator
    assert isinstance(estimator, NeuralClassifier) and estimator.module_.training is False
    assert np.array_equal(loaded.predict(X), mlp_model.predict(X))
    assert np.array_equal(loaded.predict_proba(X).to_numpy(), mlp_model.predict_proba(X).to_numpy())
    original = mlp_model.estimator
    assert estimator.history_ == original.history_ and estimator.best_epoch_ == original.best_epoch_
    assert estimator.get_params()["hidden_sizes"] == [32, 16] and estimator.device_ == "cpu"


def test_pyfunc_loader_gives_prediction_and_proba_columns(mlp_package, cancer):
    X, _ = cancer
    frame = _load_pyfunc(str(mlp_package / "data" / "forgeml")).predict(X.head(4))
    assert list(frame.columns) == ["prediction", "proba_benign", "proba_malignant"]


def test_fresh_process_loads_and_predicts_identically(mlp_package, mlp_model, cancer, tmp_path):
    X, _ = cancer
    X.to_parquet(tmp_path / "input.parquet")
    code = (
        "import sys, numpy as np, pandas as pd, pytest\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "import conftest\n"
        "conftest.install_stub_schema(pytest.MonkeyPatch())\n"
        "from forgeml.registry.package import load_package\n"
        f"model = load_package({str(mlp_package)!r})\n"
        f"X = pd.read_parquet({str(tmp_path / 'input.parquet')!r})\n"
        f"np.save({str(tmp_path / 'proba.npy')!r}, model.predict_proba(X).to_numpy())\n"
        f"np.save({str(tmp_path / 'labels.npy')!r}, model.predict(X).astype(str))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert np.array_equal(np.load(tmp_path / "labels.npy"), mlp_model.predict(X).astype(str))
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), mlp_model.predict_proba(X).to_numpy())


def _codec_round_trip(estimator, directory: Path):
    codec = TorchCodec()
    assert codec.handles(estimator)
    directory.mkdir()
    entry, types = codec.save(estimator, directory)
    assert types == [] and sorted(p.name for p in directory.iterdir()) == sorted(entry["files"])
    return codec.load(directory, entry, set()), entry


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


@pytest.mark.parametrize("case", ["cnn", "rnn_text", "transformer_tokens", "regressor_sequences", "autoencoder"])
def test_every_architecture_survives_the_codec(case, tmp_path):
    rng = np.random.default_rng(0)
    if case == "cnn":
        X, y = _digits()
        model = NeuralClassifier("cnn", image_shape=(8, 8), channels=(8,), epochs=2, random_state=0).fit(X, y)
    elif case == "rnn_text":
        X = pd.Series(["good fine great", "bad awful", "great great", "awful bad bad", "fine", "bad"] * 5)
        y = np.array([1, 0, 1, 0, 1, 0] * 5)
        model = NeuralClassifier("rnn", tokenizer="word", bidirectional=True, epochs=2, random_state=0).fit(X, y)
    elif case == "transformer_tokens":
        X = rng.integers(0, 9, (60, 7))
        y = rng.integers(0, 3, 60)
        model = NeuralClassifier("transformer", d_model=16, positional="sinusoidal", pooling="cls", epochs=2,
                                 random_state=0).fit(X, y)
    elif case == "regressor_sequences":
        X = rng.normal(size=(60, 5, 2))
        y = X.sum(axis=(1, 2))
        model = NeuralRegressor("transformer", d_model=8, nhead=2, epochs=2, random_state=0).fit(X, y)
    else:
        X = rng.normal(size=(60, 6))
        model = AutoencoderTransformer(bottleneck=2, epochs=2, random_state=0).fit(X)
    loaded, entry = _codec_round_trip(model, tmp_path / case)
    assert type(loaded) is type(model) and entry["net"] == model.net_["class"]
    if isinstance(model, NeuralClassifier):
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert np.array_equal(loaded.classes_, model.classes_) and loaded.classes_.dtype == model.classes_.dtype
    elif isinstance(model, NeuralRegressor):
        assert np.array_equal(loaded.predict(X), model.predict(X))
    else:
        assert np.array_equal(loaded.transform(X), model.transform(X))
    if case == "rnn_text":
        assert loaded.vocabulary_.tokens == model.vocabulary_.tokens


@pytest.fixture
def small_saved(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 3))
    model = NeuralRegressor(hidden_sizes=(4,), epochs=1, random_state=0).fit(X, X[:, 0])
    directory = tmp_path / "saved"
    directory.mkdir()
    entry, _ = TorchCodec().save(model, directory)
    return directory, entry


def test_only_allow_listed_classes_are_rebuilt(small_saved):
    directory, entry = small_saved
    with pytest.raises(IntegrityError, match="unexpected neural estimator class 'os.system'"):
        TorchCodec().load(directory, {**entry, "class": "os.system"}, set())
    state_file = directory / TorchCodec.STATE_FILE
    state = json.loads(state_file.read_text())
    state["net"]["class"] = "torch.nn.Linear"
    state_file.write_text(json.dumps(state))
    with pytest.raises(IntegrityError, match="does not describe a forgeml network: 'torch.nn.Linear' is not a forgeml network class"):
        TorchCodec().load(directory, entry, set())


def test_weights_that_do_not_fit_the_network_are_refused(small_saved):
    directory, entry = small_saved
    state_file = directory / TorchCodec.STATE_FILE
    state = json.loads(state_file.read_text())
    state["net"]["kwargs"]["hidden_sizes"] = [5]
    state_file.write_text(json.dumps(state))
    with pytest.raises(IntegrityError, match="does not fit its network"):
        TorchCodec().load(directory, entry, set())


def test_tampered_weights_fail_the_hash_check(mlp_package, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(mlp_package, copy)
    weights = copy / "data" / "forgeml" / "estimator.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match="'estimator.safetensors' .* does not match its recorded hash"):
        load_package(copy)
    assert MANIFEST == "forgeml.json"
