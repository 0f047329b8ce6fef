"""The model zoo: every family builds, fits and predicts for the tasks it claims; bad params are caught early."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.preprocessing import StandardScaler

from forgeml.errors import SpecError
from forgeml.models.zoo import Choice, Float, Int, auto_families, family_names, get_family


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), np.array(["setosa", "versicolor", "virginica"])[y]


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X, y


@pytest.mark.parametrize("name", [n for n in family_names() if get_family(n).auto])
def test_every_family_fits_its_tasks(name, iris, diabetes):
    """Families AutoML tries on tables; the image and sequence families are tested in test_neural.py."""
    family = get_family(name)
    if "classification" in family.tasks:
        X, y = iris
        model = family.make("classification", {}, seed=0).fit(X, y)
        assert (model.predict(X) == y).mean() > 0.85
        proba = model.predict_proba(X)
        assert proba.shape == (len(X), 3)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    if "regression" in family.tasks:
        X, y = diabetes
        model = family.make("regression", {}, seed=0).fit(X, y)
        assert np.corrcoef(model.predict(X), y)[0, 1] > 0.5


def test_search_spaces_are_well_formed():
    for name in family_names():
        for param, dim in get_family(name).space.items():
            assert isinstance(dim, (Float, Int, Choice)), (name, param)
            if isinstance(dim, (Float, Int)):
                assert dim.low < dim.high


def test_auto_order_puts_strong_cheap_families_first():
    order = [f.name for f in auto_families("classification")]
    assert order[0] == "lightgbm"
    assert "naive_bayes" in order and "naive_bayes" not in [f.name for f in auto_families("regression")]
    assert order.index("svm") > order.index("random_forest")


def test_same_seed_same_model(iris):
    X, y = iris
    a = get_family("random_forest").make("classification", {"n_estimators": 20}, seed=3).fit(X, y)
    b = get_family("random_forest").make("classification", {"n_estimators": 20}, seed=3).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize(
    ("name", "task", "params", "message"),
    [
        ("random_forest", "classification", {"n_estimator": 5}, "unknown hyperparameter 'n_estimator' for 'random_forest'; did you mean 'n_estimators'?"),
        ("random_forest", "regression", {"n_estimators": -1}, "The 'n_estimators' parameter of RandomForestRegressor must be an int in the range [1, inf). Got -1 instead."),
        ("linear", "classification", {"penalty": "l3"}, "penalty must be one of"),
        ("linear", "regression", {"C": 2.0}, "use alpha"),
        ("naive_bayes", "regression", {}, "does not do regression"),
        ("lightgbm", "classification", {"num_leave": 3}, "did you mean 'num_leaves'"),
    ],
)
def test_bad_hyperparameters_raise_spec_errors(name, task, params, message):
    with pytest.raises(SpecError) as info:
        get_family(name).make(task, params, seed=0)
    assert message in str(info.value)


def test_unknown_family():
    with pytest.raises(SpecError, match="unknown model family 'randomforest'; did you mean 'random_forest'"):
        get_family("randomforest")


# ----------------------------------------------------------------------------- CatBoost and XGBoost


def test_boosting_families_are_in_auto_after_lightgbm():
    for task in ("classification", "regression"):
        order = [f.name for f in auto_families(task)]
        assert order.index("lightgbm") < order.index("catboost") < order.index("xgboost")
    assert get_family("catboost").cost > get_family("lightgbm").cost
    assert {"depth", "learning_rate", "l2_leaf_reg"} <= set(get_family("catboost").space)
    assert get_family("xgboost").space["learning_rate"].log


def test_boosting_families_build_quiet_seeded_wrappers():
    from forgeml.models.boosting import BoostedClassifier, BoostedRegressor, usable_cores

    cat = get_family("catboost").make("classification", {"depth": 4}, seed=7)
    assert isinstance(cat, BoostedClassifier)
    params = cat.estimator.get_params()
    assert params["depth"] == 4 and params["random_seed"] == 7 and params["thread_count"] == usable_cores()
    assert params["logging_level"] == "Silent" and params["allow_writing_files"] is False
    assert "early_stopping_rounds" not in params  # read by AutoML's fitting loop
    xgb = get_family("xgboost").make("regression", {"max_depth": 3}, seed=7)
    assert isinstance(xgb, BoostedRegressor)
    params = xgb.estimator.get_params()
    assert params["tree_method"] == "hist" and params["random_state"] == 7 and params["max_depth"] == 3
    assert params["verbosity"] == 0 and params["early_stopping_rounds"] is None


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("catboost", {"depth": 20}, "invalid hyperparameter for 'catboost': Maximum tree depth is 16"),
        ("catboost", {"iterations": 500}, "catboost: use 'n_estimators' for 'iterations' (forgeml takes one name per parameter; got iterations=500)"),
        ("catboost", {"dept": 4}, "unknown hyperparameter 'dept' for 'catboost'; did you mean 'depth'?"),
        ("catboost", {"verbose": 100}, "unknown hyperparameter 'verbose' for 'catboost'"),
        ("catboost", {"grow_policy": "Leafwise"}, "Key 'Leafwise' not found in enum EGrowPolicy. Valid options are: 'SymmetricTree'"),
        ("xgboost", {"max_depth": -1}, "invalid hyperparameter for 'xgboost': value -1 for Parameter max_depth should be greater equal to 0"),
        ("xgboost", {"subsample": 1.5}, "value 1.5 for Parameter subsample exceed bound [0,1]"),
        ("xgboost", {"num_leaves": 8}, "unknown hyperparameter 'num_leaves' for 'xgboost'"),
        ("xgboost", {"callbacks": []}, "unknown hyperparameter 'callbacks' for 'xgboost'"),
    ],
)
def test_boosting_bad_hyperparameters_raise_one_line_spec_errors(name, params, message):
    with pytest.raises(SpecError) as info:
        get_family(name).make("classification", params, seed=0)
    assert message in str(info.value) and "\n" not in str(info.value)
