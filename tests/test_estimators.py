"""AutoClassifier / AutoRegressor: scikit-learn's estimator checks, real data, meta-estimators, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import forgeml
from forgeml.errors import DataError, SpecError
from forgeml.estimators import AutoClassifier, AutoRegressor, InputError
from forgeml.spec import TrainingSpec

from tables import make_churn


@parametrize_with_checks([AutoClassifier(models=["linear"], random_state=0),
                          AutoRegressor(models=["linear"], random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def wine():
    data = load_wine(as_frame=True)
    y = data.target.map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return train_test_split(data.data, y, test_size=0.3, random_state=0, stratify=y)


# ----------------------------------------------------------------------------- real data


def test_exported_lazily_from_forgeml():
    assert forgeml.AutoClassifier is AutoClassifier and forgeml.AutoRegressor is AutoRegressor


def test_defaults_come_from_the_spec():
    params = AutoClassifier().get_params()
    fields = TrainingSpec.model_fields
    assert params["time_limit"] == fields["time_limit"].default
    assert params["validation"] == fields["validation"].default and params["metric"] is None
    assert params["models"] == "auto" and params["preset"] is None and params["random_state"] is None


@pytest.mark.slow
def test_auto_on_breast_cancer_scores_well_and_reports_its_leaderboard(cancer):
    X_tr, X_te, y_tr, y_te = cancer
    clf = AutoClassifier(time_limit=4, random_state=0).fit(X_tr, y_tr)
    assert clf.n_features_in_ == 30 and not hasattr(clf, "feature_names_in_")
    assert list(clf.classes_) == [0, 1] and clf.metric_ == "roc_auc"
    assert roc_auc_score(y_te, clf.predict_proba(X_te)[:, 1]) > 0.97
    assert clf.score(X_te, y_te) > 0.92
    board = clf.leaderboard_
    assert len(board) >= 2 and {"rank", "family", "roc_auc", "status"} <= set(board.columns)
    assert board.loc[0, "rank"] == 1 and board.loc[0, "family"] == clf.best_family_
    assert isinstance(clf.model_, forgeml.ForgeModel) and clf.model_.family == clf.best_family_


def test_wine_with_string_labels(wine):
    X_tr, X_te, y_tr, y_te = wine
    clf = AutoClassifier(models=["linear", "naive_bayes"], random_state=0).fit(X_tr, y_tr)
    assert list(clf.classes_) == ["barbera", "barolo", "grignolino"]
    assert list(clf.feature_names_in_) == list(X_tr.columns) and clf.metric_ == "log_loss"
    proba = clf.predict_proba(X_te)
    assert proba.shape == (len(X_te), 3) and np.allclose(proba.sum(axis=1), 1.0)
    pred = clf.predict(X_te)
    assert set(pred) <= set(clf.classes_)
    assert np.array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X_te, y_te) > 0.9
    assert {"linear", "naive_bayes"} <= set(clf.leaderboard_["family"]) <= {"linear", "naive_bayes", "ensemble"}


def test_diabetes_regression():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    reg = AutoRegressor(models=["linear", "lightgbm"], metric="r2", random_state=0).fit(X_tr, y_tr)
    pred = reg.predict(X_te)
    assert pred.dtype == np.float64 and pred.shape == (len(X_te),)
    assert r2_score(y_te, pred) > 0.3 and reg.score(X_te, y_te) == pytest.approx(r2_score(y_te, pred))
    assert reg.metric_ == "r2" and reg.best_family_ in {"linear", "lightgbm", "ensemble"}


def test_preset_is_passed_to_automl(cancer):
    from forgeml.tuning.portfolio import PRESET_SETTINGS

    X_tr, X_te, y_tr, y_te = cancer
    clf = AutoClassifier(time_limit=2, preset="fast", random_state=0).fit(X_tr, y_tr)
    tried = set(clf.leaderboard_["family"]) - {"ensemble"}
    assert tried and tried <= set(PRESET_SETTINGS["fast"].families)
    assert clf.leaderboard_["std"].isna().all()  # fast scores on a holdout split, not by cross-validation
    assert clf.score(X_te, y_te) > 0.9


def test_dataframe_with_categories_text_dates_and_missing_values():
    df = make_churn(400)
    X, y = df.drop(columns="churn"), df["churn"]
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    clf = AutoClassifier(models=["linear", "lightgbm"], random_state=0).fit(X_tr, y_tr)
    assert list(clf.feature_names_in_) == list(X.columns) and clf.n_features_in_ == X.shape[1]
    kinds = clf.model_.schema.kinds
    assert "customer_id" not in kinds  # an identifier: no feature, as in forgeml.train
    assert kinds["plan"] == "categorical" and kinds["notes"] == "text" and kinds["signup_date"] == "datetime"
    assert kinds["monthly_fee"] == "numeric" and kinds["premium"] == "boolean"
    assert set(clf.classes_) == {"no", "yes"}
    assert roc_auc_score(y_te == "yes", clf.predict_proba(X_te)[:, 1]) > 0.7


def test_arrays_and_lists_of_mixed_values():
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], 120)
    size = rng.normal(size=120)
    y = np.where((colour == "red") ^ (size > 0.5), "a", "b")
    rows = [[c, float(s)] for c, s in zip(colour, size)]
    clf = AutoClassifier(models=["decision_tree"], random_state=0).fit(rows, y)
    assert clf.model_.schema.kinds == {"x0": "categorical", "x1": "numeric"}
    assert clf.score(np.array(rows, dtype=object), y) > 0.9

    frame = pd.DataFrame({0: size, 1: size ** 2})  # no string column names: none kept
    reg = AutoRegressor(models=["linear"], random_state=0).fit(frame, 3 * size)
    assert not hasattr(reg, "feature_names_in_") and reg.n_features_in_ == 2
    assert r2_score(3 * size, reg.predict(frame)) > 0.99


def test_a_feature_named_like_the_target_and_a_single_sample_class(wine):
    X_tr, X_te, y_tr, _ = wine
    X = X_tr.rename(columns={"alcohol": "__target__"})
    y = y_tr.to_numpy().copy()
    y[0] = "nebbiolo"  # a class seen once: the folds cannot be stratified, the fit still works
    clf = AutoClassifier(models=["linear"], random_state=0).fit(X, y)
    assert "__target__" in clf.model_.schema.feature_names and clf.model_.target != "__target__"
    assert list(clf.classes_) == ["barbera", "barolo", "grignolino", "nebbiolo"]
    proba = clf.predict_proba(X_te.rename(columns={"alcohol": "__target__"}))
    assert proba.shape == (len(X_te), 4) and np.allclose(proba.sum(axis=1), 1.0)


# ----------------------------------------------------------------------------- meta-estimators


def test_in_a_pipeline_with_cross_val_score(cancer):
    X_tr, _, y_tr, _ = cancer
    pipe = make_pipeline(StandardScaler(), AutoClassifier(models=["linear"], time_limit=5, random_state=0))
    scores = cross_val_score(pipe, X_tr, y_tr, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.93


def test_grid_search_over_models(cancer):
    X_tr, X_te, y_tr, y_te = cancer
    search = GridSearchCV(AutoClassifier(random_state=0), {"models": [["linear"], ["naive_bayes"]], "time_limit": [5]},
                          cv=3, scoring="roc_auc").fit(X_tr, y_tr)
    assert search.best_params_["models"] in (["linear"], ["naive_bayes"])
    assert search.best_estimator_.best_family_ == search.best_params_["models"][0]
    assert search.score(X_te, y_te) > 0.95


def test_clone_keeps_params_and_drops_fitted_state(wine):
    X_tr, _, y_tr, _ = wine
    clf = AutoClassifier(7, models=["linear"], metric="accuracy", validation="holdout", random_state=3).fit(X_tr, y_tr)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert twin.get_params()["time_limit"] == 7 and twin.get_params()["validation"] == "holdout"
    assert not hasattr(twin, "model_")
    with pytest.raises(NotFittedError):
        twin.predict(X_tr)


def test_same_random_state_same_predictions(wine):
    X_tr, X_te, y_tr, _ = wine

    def fit(seed):
        models = [{"family": "random_forest", "params": {"n_estimators": 10}}, "linear"]
        return AutoClassifier(time_limit=None, models=models, random_state=seed).fit(X_tr, y_tr)

    first, second, other = fit(5), fit(5), fit(6)
    assert np.array_equal(first.predict_proba(X_te), second.predict_proba(X_te))
    assert first.leaderboard_["log_loss"].tolist() == second.leaderboard_["log_loss"].tolist()
    assert first.leaderboard_["log_loss"].tolist() != other.leaderboard_["log_loss"].tolist()


def test_fit_leaves_nothing_under_forgeml_home(fresh_home, wine):
    X_tr, _, y_tr, _ = wine
    AutoClassifier(models=["linear"], random_state=0).fit(X_tr, y_tr)
    assert not fresh_home.exists() or not any(fresh_home.iterdir())


def test_verbose_logs_each_candidate(caplog, wine):
    X_tr, _, y_tr, _ = wine
    with caplog.at_level(logging.INFO, logger="forgeml.estimators"):
        AutoClassifier(models=["linear"], random_state=0).fit(X_tr, y_tr)
        assert not caplog.records
        AutoClassifier(models=["linear", "naive_bayes"], verbose=True, random_state=0).fit(X_tr, y_tr)
    assert [r.message.split("'family': ")[1][:8] for r in caplog.records][:2] == ["'linear'", "'naive_b"]


# ----------------------------------------------------------------------------- bad input


def test_bad_input_raises_sklearn_errors(wine):
    X_tr, X_te, y_tr, _ = wine
    clf = AutoClassifier(models=["linear"], random_state=0)
    with pytest.raises(ValueError, match="requires y to be passed"):
        clf.fit(X_tr, None)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X_tr, y_tr[:-3])
    with pytest.raises(ValueError, match="1 class") as info:
        clf.fit(X_tr, np.repeat("barolo", len(X_tr)))
    assert isinstance(info.value, DataError)  # a forgeml error too: one line for the CLI
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(X_tr, np.linspace(0, 1, len(X_tr)))
    with pytest.raises(ValueError, match="Input y contains NaN"):
        AutoRegressor(models=["linear"]).fit(X_tr, np.r_[np.nan, np.ones(len(X_tr) - 1)])
    with pytest.raises(ValueError, match="could not convert string to float"):
        AutoRegressor(models=["linear"]).fit(X_tr, y_tr)
    with pytest.raises(InputError, match="n_samples=3"):
        AutoRegressor(models=["linear"]).fit([[1.0], [2.0], [3.0]], [1.0, 2.0, 3.0])
    with pytest.raises(NotFittedError):
        clf.predict_proba(X_te)
    clf.fit(X_tr, y_tr)
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(X_te.rename(columns={"alcohol": "Alcohol"}))
    with pytest.raises(ValueError, match="X has 12 features, but AutoClassifier is expecting 13"), \
            pytest.warns(UserWarning, match="X does not have valid feature names"):
        clf.predict(X_te.to_numpy()[:, 1:])


def test_bad_params_raise_spec_errors_naming_the_fix(wine):
    X_tr, _, y_tr, _ = wine
    with pytest.raises(SpecError, match="unknown model family 'lineer'; did you mean 'linear'"):
        AutoClassifier(models=["lineer"]).fit(X_tr, y_tr)
    with pytest.raises(SpecError, match="metric 'rmse' is for regression"):
        AutoClassifier(models=["linear"], metric="rmse").fit(X_tr, y_tr)
    with pytest.raises(SpecError, match="time_limit"):
        AutoClassifier(time_limit=-1).fit(X_tr, y_tr)
    with pytest.raises(SpecError, match="validation"):
        AutoClassifier(validation="kfold").fit(X_tr, y_tr)
    with pytest.raises(SpecError, match="training.preset"):
        AutoClassifier(preset="quick").fit(X_tr, y_tr)
