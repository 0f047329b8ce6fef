"""Neural estimators on real and planted-rule data, scikit-learn's contract, and every bad input."""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split

pytest.importorskip("torch")

from forgeml.errors import DataError, SpecError
from forgeml.models.neural import (
    AutoencoderTransformer,
    NeuralClassifier,
    NeuralRegressor,
)
from forgeml.models.zoo import auto_families, get_family
from forgeml.spec import NeuralSpec


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def cancer_model(cancer):
    X_train, _, y_train, _ = cancer
    return NeuralClassifier(random_state=0).fit(X_train, y_train.map({0: "malignant", 1: "benign"}))


# ----------------------------------------------------------------------------- real data


def test_mlp_on_breast_cancer(cancer, cancer_model):
    _, X_test, _, y_test = cancer
    model = cancer_model
    assert model.score(X_test, y_test.map({0: "malignant", 1: "benign"})) > 0.93
    assert list(model.classes_) == ["benign", "malignant"]  # string labels, sorted
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert model.n_features_in_ == 30 and list(model.feature_names_in_) == list(X_test.columns)
    assert model.device_ == "cpu" and model.module_.training is False
    rows = model.history_
    assert rows and {"epoch", "train_loss", "val_loss", "val_metric", "lr", "seconds"} <= set(rows[0])
    assert 1 <= model.best_epoch_ <= len(rows) == model.n_epochs_


def test_mlp_on_diabetes_through_the_zoo():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    model = get_family("mlp").make("regression", {}, seed=0).fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.3
    assert model.predict(X_test).shape == (len(X_test),)


def test_cnn_on_digits_reaches_97_percent_within_a_minute(digits_split):
    X_train, X_test, y_train, y_test = digits_split  # flat 8x8 images, 0..16
    start = time.monotonic()
    model = NeuralClassifier("cnn", image_shape=(8, 8), random_state=0).fit(X_train, y_train)
    assert time.monotonic() - start < 60
    assert model.score(X_test, y_test) >= 0.97
    assert model.module_.__class__.__name__ == "CNN" and model.n_features_in_ == 64
    images = X_test.reshape(-1, 8, 8)  # (N, H, W) reads the same as flat rows with image_shape
    assert np.array_equal(model.predict(images), model.predict(X_test))


def test_cnn_on_an_image_folder(tmp_path):
    from PIL import Image

    from forgeml.data.images import read_image_folder

    rng = np.random.default_rng(0)
    for label, side in (("left", 0), ("right", 1)):
        (tmp_path / label).mkdir()
        for i in range(24):
            pixels = rng.integers(0, 60, (12, 12, 3), dtype=np.uint8)
            pixels[:, side * 6 : side * 6 + 6] += 150  # the bright half names the class
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    X, labels, _ = read_image_folder(tmp_path)
    model = NeuralClassifier("cnn", channels=(8, 16), epochs=10, learning_rate=1e-2, random_state=0).fit(X, labels)
    assert model.score(X, labels) > 0.9 and set(model.classes_) == {"left", "right"}


# ----------------------------------------------------------------------------- sequences and text


@pytest.mark.parametrize(("architecture", "params"), [
    ("rnn", {"hidden_size": 32, "learning_rate": 1e-2}),
    ("rnn", {"rnn_type": "gru", "bidirectional": True, "hidden_size": 32, "learning_rate": 5e-3, "pooling": "mean"}),
    ("transformer", {"d_model": 32, "learning_rate": 3e-3}),
])
def test_sequence_models_learn_which_token_comes_first(order_data, architecture, params):
    (X, y), (X_test, y_test) = order_data
    model = NeuralClassifier(architecture, epochs=20, batch_size=64, random_state=0, **params).fit(X, y)
    assert model.score(X_test, y_test) > 0.8  # chance is 0.5: a bag of tokens cannot tell


def test_rnn_learns_the_trend_of_variable_length_numeric_series(trend_data):
    (X, y, _), (X_test, y_test, lengths_test) = trend_data
    model = NeuralClassifier("rnn", hidden_size=32, learning_rate=1e-2, epochs=15, batch_size=64, random_state=0)
    model.fit(X, y)  # lengths inferred from the NaN padding
    assert model.score(X_test, y_test) > 0.85
    explicit = model.predict(np.nan_to_num(X_test), lengths=lengths_test)  # zero padding with lengths given
    assert np.array_equal(explicit, model.predict(X_test))


def test_transformer_classifies_generated_reviews_with_a_word_tokenizer(review_data):
    (texts, labels), (texts_test, labels_test) = review_data
    model = NeuralClassifier("transformer", tokenizer="word", d_model=32, learning_rate=3e-3, epochs=15, batch_size=32,
                             random_state=0).fit(pd.Series(texts), labels)
    assert model.score(texts_test, labels_test) > 0.9
    assert "great" in model.vocabulary_.index and model.vocabulary_.tokenizer == "word"
    assert model.predict(["Totally unseen words here"]).shape == (1,)  # unknown tokens only


def test_rnn_regressor_on_char_tokens(review_data):
    (texts, _), _ = review_data
    y = np.array([len(t) for t in texts], dtype=float)
    model = NeuralRegressor("rnn", tokenizer="char", max_length=40, epochs=3, random_state=0).fit(texts, y)
    assert model.encoder_.state["max_length"] == 40 and model.predict(texts[:5]).shape == (5,)


# ----------------------------------------------------------------------------- options


def test_categorical_codes_get_embeddings_and_unseen_codes_map_to_unknown():
    rng = np.random.default_rng(0)
    n = 800
    code = rng.integers(0, 12, n)
    noise = rng.normal(size=(n, 2))
    X = np.column_stack([noise, code]).astype(float)
    y = np.isin(code, [1, 4, 7, 9, 11]).astype(int)  # only the code matters, and not monotonically
    model = NeuralClassifier(categorical_features=[2], hidden_sizes=(32,), learning_rate=1e-2, epochs=40,
                             random_state=0).fit(X, y)
    assert model.net_["kwargs"]["cardinalities"] == [13]
    assert model.score(X, y) > 0.95
    unseen = np.array([[0.0, 0.0, 99.0], [0.0, 0.0, np.nan]])
    assert model.predict_proba(unseen).shape == (2, 2)


def test_balanced_class_weight_bce_and_determinism():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + 0.3 * rng.normal(size=300) > 1.0).astype(int)  # ~16 % positives
    a = NeuralClassifier(class_weight="balanced", loss="bce", epochs=5, random_state=3).fit(X, y)
    b = NeuralClassifier(class_weight="balanced", loss="bce", epochs=5, random_state=3).fit(X, y)
    assert a.output_ == "sigmoid" and a.predict_proba(X).shape == (300, 2)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))  # same seed, same model


def test_multi_output_regression_and_no_early_stopping():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 3))
    Y = np.column_stack([X[:, 0] * 100 + 5, X[:, 1] - X[:, 2]])
    model = NeuralRegressor(hidden_sizes=(32,), epochs=4, early_stopping=False, random_state=0).fit(X, Y)
    assert model.predict(X).shape == (200, 2) and model.n_epochs_ == 4
    assert "val_loss" not in model.history_[0]  # nothing watches a validation split: all rows train


def test_autoencoder_codes_and_reconstruction_error():
    rng = np.random.default_rng(3)
    codes = rng.normal(size=(500, 2))
    X = codes @ rng.normal(size=(2, 8)) + 0.05 * rng.normal(size=(500, 8))  # rank-2 data in 8 columns
    model = AutoencoderTransformer(hidden_sizes=(16,), bottleneck=2, epochs=60, learning_rate=5e-3, random_state=0).fit(X)
    assert model.transform(X).shape == (500, 2) and model.get_feature_names_out().tolist()[0].endswith("0")
    outliers = rng.normal(size=(20, 8)) * 3
    assert np.median(model.reconstruction_error(outliers)) > 5 * np.median(model.reconstruction_error(X))


# ----------------------------------------------------------------------------- scikit-learn's contract


def test_constructor_stores_every_spec_field_verbatim():
    for cls in (NeuralClassifier, NeuralRegressor, AutoencoderTransformer):
        params = cls().get_params()
        assert set(NeuralSpec.model_fields) <= set(params), cls
        assert all(params[k] is None for k in NeuralSpec.model_fields if k != "early_stopping")
    model = NeuralClassifier("cnn", channels=(8, 16), learning_rate=0.01, early_stopping={"patience": 3})
    twin = clone(model)
    assert twin.get_params() == model.get_params() and twin.channels == (8, 16)
    assert twin.set_params(learning_rate=0.5) is twin and twin.learning_rate == 0.5
    assert model._config().early_stopping.patience == 3 and model._config().learning_rate == 0.01
    assert NeuralClassifier()._config() == NeuralSpec()  # None everywhere: exactly the spec's defaults


def test_fit_returns_self_and_predict_before_fit_is_refused(cancer):
    X_train, _, y_train, _ = cancer
    model = NeuralClassifier(epochs=1, random_state=0)
    with pytest.raises(NotFittedError):
        model.predict(X_train)
    assert model.fit(X_train, y_train) is model
    with pytest.raises(NotFittedError):
        NeuralRegressor().predict(X_train)
    with pytest.raises(NotFittedError):
        AutoencoderTransformer().transform(X_train)


@pytest.mark.parametrize("estimator", [
    NeuralClassifier(epochs=2, random_state=0),
    NeuralRegressor(epochs=30, learning_rate=1e-2, random_state=0),
    AutoencoderTransformer(epochs=2, random_state=0),
], ids=lambda e: type(e).__name__)
def test_scikit_learn_estimator_checks(estimator):
    from sklearn.utils.estimator_checks import check_estimator

    expected = {
        "check_class_weight_classifiers": "class_weight is 'none' or 'balanced' (NeuralSpec), not a dict",
        # float32 matmuls may round differently by batch size and thread count (~1e-6 relative)
        "check_methods_subset_invariance": "float32 results can differ in the last bits across batch sizes",
    }
    check_estimator(estimator, expected_failed_checks=expected)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("params", "message"), [
    ({"optimizer": "adamx"}, "NeuralClassifier parameter 'optimizer': Input should be 'sgd', 'adam', 'adamw' or 'rmsprop' (got 'adamx'); did you mean 'adam'"),
    ({"learning_rate": -0.1}, "NeuralClassifier parameter 'learning_rate': Input should be greater than 0 (got -0.1)"),
    ({"early_stopping": {"patience": 0}}, "parameter 'early_stopping.patience'"),
    ({"architecture": "mpl"}, "The 'architecture' parameter of NeuralClassifier must be a str among"),
    ({"hidden_sizes": (64, 0)}, "'hidden_sizes' parameter of NeuralClassifier must be a non-empty list of positive ints"),
    ({"architecture": "transformer", "d_model": 30}, "d_model (30) must be divisible by nhead (4)"),
    ({"loss": "mse"}, "loss 'mse' is for regression"),
])
def test_bad_parameters_are_one_line_spec_errors(params, message):
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(SpecError) as info:
        NeuralClassifier(**params).fit(X, y)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_hyperparameters_through_the_zoo():
    with pytest.raises(SpecError, match="'learning_rate': Input should be greater than 0"):
        get_family("mlp").make("classification", {"learning_rate": -1.0}, seed=0)
    with pytest.raises(SpecError, match="unknown hyperparameter 'hiden_size' for 'rnn'; did you mean 'hidden_size'"):
        get_family("rnn").make("classification", {"hiden_size": 8}, seed=0)


@pytest.mark.parametrize(("model", "X", "y", "message"), [
    (NeuralClassifier("cnn"), np.zeros((10, 64)), np.arange(10) % 2, r"cnn reads images shaped \(N, C, H, W\) or \(N, H, W\), or flat rows with image_shape"),
    (NeuralClassifier("cnn"), np.zeros((10, 2, 2, 2, 2)), np.arange(10) % 2, "got an array of shape"),
    (NeuralClassifier("cnn", image_shape=(3, 4)), np.zeros((10, 64)), np.arange(10) % 2, r"image_shape \(1, 3, 4\) holds 12 pixels but rows have 64"),
    (NeuralClassifier("rnn"), pd.Series(["some text", "more"]), [0, 1], "got a column of texts but no tokenizer; set tokenizer='word' or 'char'"),
    (NeuralClassifier("rnn", tokenizer="word"), pd.Series(["", None, " "]), [0, 1, 0], "all 3 texts are empty or missing"),
    (NeuralClassifier("transformer", tokenizer="word"), np.zeros((4, 3), dtype=np.int64), [0, 1, 0, 1], "needs a column of texts"),
    (NeuralClassifier(), np.zeros((4, 3)), ["a"] * 4, "the target has one class 'a'; a classifier needs at least two"),
    (NeuralClassifier(), np.zeros((4, 3)), [0.5, 1.5, 2.25, 3.0], "continuous target"),
    (NeuralClassifier(), np.zeros((4, 3)), [0, 1, None, 1], "1 missing labels"),
    (NeuralClassifier(), np.zeros((5, 3)), [0, 1, 0, 1], "X has 5 rows but y has 4"),
    (NeuralRegressor(), np.zeros((4, 3)), [1.0, np.nan, 2.0, 3.0], "finite numbers"),
    (NeuralRegressor(), np.array([["a", "b"], ["c", "d"]]), [1.0, 2.0], "must be numeric"),
])
def test_bad_inputs_are_one_line_data_errors(model, X, y, message):
    with pytest.raises(DataError, match=message) as info:
        model.set_params(epochs=1).fit(X, y)
    assert "\n" not in str(info.value)


def test_predict_checks_the_input_against_fit(cancer, cancer_model):
    _, X_test, _, _ = cancer
    with pytest.raises(DataError, match="X has 29 features, but NeuralClassifier is expecting 30 features as input"):
        cancer_model.predict(X_test.iloc[:, 1:])
    images = NeuralClassifier("cnn", channels=(4,), epochs=1).fit(np.zeros((6, 1, 4, 4)), [0, 1] * 3)
    with pytest.raises(DataError, match=r"images have shape \[1, 5, 5\]; the model was fitted on \(C, H, W\) = \[1, 4, 4\]"):
        images.predict(np.zeros((2, 5, 5)))


def test_neural_families_need_torch_and_import_it_lazily(monkeypatch):
    import subprocess

    code = ("import sys, forgeml.models.zoo as z; z.get_family('mlp'); "
            "assert 'torch' not in sys.modules and 'forgeml.models.neural' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails, find_spec says None
    for name in ("mlp", "cnn", "rnn", "transformer"):
        with pytest.raises(SpecError, match=f"model family '{name}' needs PyTorch: pip install 'forgeml\\[neural\\]'"):
            get_family(name).make("classification", {}, seed=0)
    with pytest.raises(SpecError, match="needs PyTorch"):
        NeuralClassifier().fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_only_the_tabular_network_is_tried_by_automl():
    names = [f.name for f in auto_families("classification")]
    assert "mlp" in names and names[-1] == "mlp"  # after the classical families
    assert not {"cnn", "rnn", "transformer"} & set(names)
    assert all(get_family(n).neural for n in ("mlp", "cnn", "rnn", "transformer"))


@pytest.mark.slow
def test_two_workers_match_one_process_with_the_same_global_batch():
    """workers=2 x batch 8 trains with DDP in two processes; one process x batch 16 sees the same rows per
    step, so the predictions agree up to float32 summation order (no dropout or batch norm, whose random
    masks and batch statistics are per process)."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    common = dict(hidden_sizes=(16,), epochs=3, optimizer="sgd", learning_rate=0.01, early_stopping=False,
                  dropout=0.0, batch_norm=False, random_state=0)
    one = NeuralRegressor(batch_size=16, **common).fit(X, y)
    two = NeuralRegressor(batch_size=8, workers=2, **common).fit(X, y)
    assert two.n_epochs_ == one.n_epochs_ == 3
    np.testing.assert_allclose(two.predict(X), one.predict(X), rtol=1e-4, atol=1e-4)
    assert [round(r["train_loss"], 4) for r in two.history_] == [round(r["train_loss"], 4) for r in one.history_]
