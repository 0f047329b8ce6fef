"""CatBoost and XGBoost wrappers: string labels, early stopping, stop signal, native serialisation, registry."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import train_test_split

from forgeml.models.boosting import BoostedClassifier, BoostedRegressor, check_params, library_of
from forgeml.models.zoo import get_family

LIBRARIES = ["catboost", "xgboost"]


def _inner(library: str, task: str = "classification", **params):
    """An unfitted library estimator, single-threaded and quiet."""
    if library == "catboost":
        import catboost

        cls = catboost.CatBoostClassifier if task == "classification" else catboost.CatBoostRegressor
        return cls(**{"thread_count": 1, "random_seed": 0, "logging_level": "Silent", "allow_writing_files": False,
                      **params})
    import xgboost

    cls = xgboost.XGBClassifier if task == "classification" else xgboost.XGBRegressor
    return cls(**{"n_jobs": 1, "random_state": 0, "tree_method": "hist", **params})


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    labels = np.array(["malignant", "benign"])[y]
    return train_test_split(X, labels, test_size=0.3, random_state=0, stratify=labels)


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    labels = np.array(["barolo", "grignolino", "barbera"])[y]
    return train_test_split(X, labels, test_size=0.3, random_state=0, stratify=labels)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0)


@pytest.mark.parametrize("library", LIBRARIES)
def test_binary_string_labels(library, cancer):
    X_tr, X_te, y_tr, y_te = cancer
    model = BoostedClassifier(_inner(library, n_estimators=200, learning_rate=0.1)).fit(X_tr, y_tr)
    assert model.classes_.tolist() == ["benign", "malignant"]
    pred = model.predict(X_te)
    assert pred.dtype.kind in "UO" and set(pred) <= {"benign", "malignant"}
    assert (pred == y_te).mean() > 0.9
    proba = model.predict_proba(X_te)
    assert proba.shape == (len(X_te), 2)
    assert roc_auc_score(y_te == "malignant", proba[:, 1]) > 0.97
    assert model.n_estimators_ == 200 and model.n_features_in_ == X_tr.shape[1]


@pytest.mark.parametrize("library", LIBRARIES)
def test_multiclass_string_labels(library, wine):
    X_tr, X_te, y_tr, y_te = wine
    model = BoostedClassifier(_inner(library, n_estimators=150, learning_rate=0.1)).fit(X_tr, pd.Series(y_tr))
    assert model.classes_.tolist() == ["barbera", "barolo", "grignolino"]
    proba = model.predict_proba(X_te)
    assert proba.shape == (len(X_te), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert np.array_equal(model.predict(X_te), model.classes_[proba.argmax(axis=1)])
    assert (model.predict(X_te) == y_te).mean() > 0.9


@pytest.mark.parametrize("library", LIBRARIES)
def test_regression(library, diabetes):
    X_tr, X_te, y_tr, y_te = diabetes
    model = BoostedRegressor(_inner(library, "regression", n_estimators=150, learning_rate=0.05, max_depth=3))
    model.fit(X_tr, y_tr)
    pred = model.predict(X_te)
    assert pred.shape == (len(X_te),) and pred.dtype == float
    assert r2_score(y_te, pred) > 0.3


@pytest.mark.parametrize("library", LIBRARIES)
def test_early_stopping_keeps_the_best_iteration(library, cancer):
    X_tr, X_te, y_tr, y_te = cancer
    inner = _inner(library, n_estimators=2000, learning_rate=0.3)
    model = BoostedClassifier(inner).fit(X_tr, y_tr, eval_set=(X_te, y_te), early_stopping_rounds=10)
    assert 1 <= model.n_estimators_ < 200  # far fewer than the 2000 asked for
    if library == "catboost":
        assert model.estimator_.tree_count_ == model.n_estimators_  # cut to its best iteration
    else:  # the booster keeps the rounds after the best one; predictions stop at the best
        assert model.estimator_.get_booster().num_boosted_rounds() == model.n_estimators_ + 10
        best = model.estimator_.predict_proba(X_te, iteration_range=(0, model.n_estimators_))
        np.testing.assert_array_equal(model.predict_proba(X_te), best)
        assert model.estimator_.get_params()["callbacks"] is None  # no closure left behind
    assert (model.predict(X_te) == y_te).mean() > 0.9
    assert inner.get_params()["n_estimators"] == 2000  # the template is not touched: fit works on a clone


@pytest.mark.parametrize("library", LIBRARIES)
def test_should_stop_ends_training_with_the_trees_so_far(library, wine):
    X_tr, _, y_tr, _ = wine
    polls = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) >= 7

    model = BoostedClassifier(_inner(library, n_estimators=500)).fit(X_tr, y_tr, should_stop=stop)
    assert model.n_estimators_ == 7 and len(polls) == 7
    reg = BoostedRegressor(_inner(library, "regression", n_estimators=500)).fit(X_tr, y_tr == "barolo",
                                                                                 should_stop=lambda: True)
    assert reg.n_estimators_ == 1


@pytest.mark.parametrize("library", LIBRARIES)
def test_validation_rows_of_unseen_classes_are_left_out(library, wine):
    X_tr, X_te, y_tr, y_te = wine
    keep = y_tr != "barbera"
    y_val = y_te.copy()
    model = BoostedClassifier(_inner(library, n_estimators=300, learning_rate=0.3))
    model.fit(X_tr[keep], y_tr[keep], eval_set=(X_te, y_val), early_stopping_rounds=5)
    assert model.classes_.tolist() == ["barolo", "grignolino"] and model.n_estimators_ < 300


@pytest.mark.parametrize("library", LIBRARIES)
def test_sparse_input_as_forgeml_text_features_give_it(library):
    import scipy.sparse as sp

    X = sp.random(500, 200, density=0.05, format="csr", random_state=0)
    y = np.where(np.asarray(X[:, :5].sum(axis=1)).ravel() > 0.1, "yes", "no")
    model = BoostedClassifier(_inner(library, n_estimators=100, learning_rate=0.3))
    model.fit(X[:400], y[:400], eval_set=(X[400:], y[400:]), early_stopping_rounds=20)
    assert (model.predict(X[400:]) == y[400:]).mean() > 0.9


@pytest.mark.parametrize("library", LIBRARIES)
def test_same_seed_same_model(library, wine):
    X_tr, X_te, y_tr, _ = wine
    a, b, c = (get_family(library).make("classification", {"n_estimators": 50}, seed=seed).fit(X_tr, y_tr)
               for seed in (5, 5, 6))  # row subsampling (0.8 by default) makes the seed matter
    np.testing.assert_array_equal(a.predict_proba(X_te), b.predict_proba(X_te))
    assert not np.array_equal(a.predict_proba(X_te), c.predict_proba(X_te))


@pytest.mark.parametrize("library", LIBRARIES)
def test_pickle_and_skops_hold_native_bytes_not_library_objects(library, wine):
    import skops.io as sio

    X_tr, X_te, y_tr, _ = wine
    model = BoostedClassifier(_inner(library, n_estimators=30)).fit(X_tr, y_tr)
    state = model.__getstate__()
    assert isinstance(state["estimator_"]["model"], bytes) and state["estimator"]["class"].startswith(library)
    blob = sio.dumps(model)
    assert sio.get_untrusted_types(data=blob) == ["forgeml.models.boosting.BoostedClassifier"]
    for copy in (pickle.loads(pickle.dumps(model)), sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))):
        assert library_of(copy.estimator_) == library and copy.classes_.tolist() == model.classes_.tolist()
        np.testing.assert_array_equal(copy.predict_proba(X_te), model.predict_proba(X_te))
        assert copy.get_params()["estimator__n_estimators"] == 30


def test_sklearn_protocol_clone_and_nested_params():
    model = BoostedClassifier(_inner("xgboost", n_estimators=10, max_depth=3))
    model.set_params(estimator__max_depth=4)
    twin = clone(model)
    assert twin.get_params()["estimator__max_depth"] == 4 and twin.estimator is not model.estimator
    assert model.__sklearn_tags__().estimator_type == "classifier"
    assert BoostedRegressor().__sklearn_tags__().estimator_type == "regressor"


def test_bad_estimators_and_targets_are_refused(wine):
    from sklearn.tree import DecisionTreeClassifier

    X_tr, _, y_tr, _ = wine
    with pytest.raises(TypeError, match="got sklearn.tree._classes.DecisionTreeClassifier"):
        BoostedClassifier(DecisionTreeClassifier()).fit(X_tr, y_tr)
    with pytest.raises(ValueError, match="needs an estimator"):
        BoostedRegressor().fit(X_tr, y_tr)
    with pytest.raises(ValueError, match=r"at least 2 classes in y; got only \['barolo'\]"):
        BoostedClassifier(_inner("catboost", n_estimators=5)).fit(X_tr[:3], np.array(["barolo"] * 3))


@pytest.mark.parametrize(
    ("library", "params", "message"),
    [
        ("catboost", {"depth": 20}, "Maximum tree depth is 16"),
        ("catboost", {"l2_leaf_reg": -1.0}, "L2LeafRegularizer should be >= 0, current value: -1"),
        ("xgboost", {"max_depth": -1}, "value -1 for Parameter max_depth should be greater equal to 0"),
        ("xgboost", {"tree_method": "fast"}, "Invalid Input: 'fast', valid values are"),
    ],
)
def test_check_params_gives_the_library_message_on_one_line(library, params, message):
    with pytest.raises(ValueError) as info:
        check_params(_inner(library, **params))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not str(info.value).startswith("catboost/")  # source-file prefix stripped
    check_params(_inner(library))  # good params pass


# ----------------------------------------------------------------------------- through forgeml


@pytest.mark.parametrize("family", LIBRARIES)
def test_families_train_on_a_messy_table_through_the_zoo(family):
    """The zoo's estimator behind forgeml's preprocessing: string classes, categories, missing values."""
    from tables import make_churn

    from forgeml.data.profile import infer_kinds
    from forgeml.evaluation.metrics import get_metric
    from forgeml.spec import PreprocessingSpec
    from forgeml.tuning.automl import Problem, fit_pipeline

    df = make_churn(600, seed=3)
    y = df.pop("churn")
    kinds = {c: k for c, k in infer_kinds(df).items() if k != "identifier"}
    X = df[list(kinds)]
    problem = Problem(task="classification", kinds=kinds, preprocessing=PreprocessingSpec(),
                      metric=get_metric("roc_auc"), classes=sorted(y.unique()), seed=0)
    params = {"n_estimators": 1000, "learning_rate": 0.2}
    pipe, best = fit_pipeline(get_family(family), params, problem, X.iloc[:450], y.iloc[:450],
                              X.iloc[450:], y.iloc[450:])
    assert 1 <= best < 1000 and pipe.named_steps["model"].n_estimators_ == best
    assert list(pipe.classes_) == ["no", "yes"]
    proba = pipe.predict_proba(X.iloc[450:])
    assert roc_auc_score(y.iloc[450:] == "yes", proba[:, 1]) > 0.6


@pytest.mark.slow
def test_train_register_and_load_in_a_fresh_process(fresh_home, tmp_path):
    """forgeml.train registers a CatBoost model; a new process loads it through the registry (native file,
    hash-checked) and predicts exactly what the trained model predicts, string classes included.
    (XGBoost's package round trip, in a fresh process too, is in tests/registry/test_package.py.)"""
    import forgeml

    data = load_wine(as_frame=True).frame
    data["target"] = data["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    choice = {"family": "catboost", "params": {"n_estimators": 300}}
    result = forgeml.train(data, target="target", models=[choice], time_limit=60, name="wine-catboost",
                           register=True, report=False, seed=3)
    assert result.model.family == "catboost" and result.metrics["accuracy"] > 0.85
    X = data.drop(columns=["target"])
    X.to_parquet(tmp_path / "input.parquet")
    code = (
        "import numpy as np, pandas as pd, forgeml\n"
        "from forgeml.registry.package import read_manifest\n"
        "from forgeml.registry.store import Store\n"
        "model = forgeml.load('wine-catboost@latest')\n"
        f"X = pd.read_parquet({str(tmp_path / 'input.parquet')!r})\n"
        f"np.save({str(tmp_path / 'proba.npy')!r}, model.predict_proba(X).to_numpy())\n"
        f"np.save({str(tmp_path / 'labels.npy')!r}, np.asarray(model.predict(X)).astype(str))\n"
        "store = Store()\n"
        "entry = read_manifest(store.download(store.resolve(model.name + '@latest')))['estimator']\n"
        "print(entry['codec'], entry['files'][0], type(model.estimator).__name__, ','.join(model.classes))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    codec, file, wrapper, classes = done.stdout.split()[-4:]
    assert (codec, file) == ("catboost", "estimator.cbm")
    assert wrapper == "BoostedClassifier" and classes == "barbera,barolo,grignolino"
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), result.model.predict(X).astype(str))
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), result.model.predict_proba(X).to_numpy())
