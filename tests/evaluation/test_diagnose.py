from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.tree import DecisionTreeClassifier

from forgeml.errors import SpecError
from forgeml.evaluation.diagnose import Diagnosis, baseline_score, diagnose_fit
from forgeml.evaluation.metrics import evaluate_predictions


def test_overfitting_on_a_score_metric():
    d = diagnose_fit("roc_auc", 1.0, 0.87, 0.86)
    assert d.verdict == "overfitting"
    assert d.gap == pytest.approx(0.13)
    assert d.message.startswith("train roc_auc 1.000 vs validation 0.870: the model memorises the training data")
    assert "regularise" in d.message


def test_overfitting_on_an_error_metric_uses_a_relative_gap():
    d = diagnose_fit("rmse", 1.0, 2.0, None)
    assert d.verdict == "overfitting" and d.gap == pytest.approx(0.5)
    # 20% relative worse is within tolerance
    assert diagnose_fit("rmse", 8.0, 10.0, None, baseline=30.0).verdict == "good fit"


def test_held_out_falls_back_to_test():
    d = diagnose_fit("accuracy", 0.99, None, 0.80)
    assert d.verdict == "overfitting" and "vs test 0.800" in d.message
    assert d.validation is None and d.test == 0.80


@pytest.mark.parametrize(
    ("metric", "train", "held", "baseline"),
    [
        ("accuracy", 0.61, 0.60, 0.60),  # no better than the majority class
        ("accuracy", 0.62, 0.55, 0.60),  # a gap, but train itself learnt nothing: underfitting wins
        ("roc_auc", 0.54, 0.52, None),  # implied chance level 0.5
        ("r2", 0.05, 0.03, None),  # implied constant predictor r2 = 0
        ("rmse", 74.0, 75.0, 76.0),  # error barely below the mean predictor's
        ("log_loss", 0.66, 0.67, 0.69),
    ],
)
def test_underfitting(metric, train, held, baseline):
    d = diagnose_fit(metric, train, held, None, baseline=baseline)
    assert d.verdict == "underfitting", d
    assert "dummy model" in d.message and "more flexible" in d.message


@pytest.mark.parametrize(
    ("metric", "train", "held", "baseline"),
    [
        ("accuracy", 0.95, 0.94, 0.60),
        ("roc_auc", 0.97, 0.95, None),
        ("rmse", 50.0, 53.0, 76.0),
        ("r2", 0.52, 0.50, None),
        ("log_loss", 0.20, 0.24, None),  # no baseline known: only the gap is judged
        ("accuracy", 1.0, 1.0, 1.0),  # a perfect baseline leaves nothing to underfit
    ],
)
def test_good_fit(metric, train, held, baseline):
    d = diagnose_fit(metric, train, held, None, baseline=baseline)
    assert d.verdict == "good fit", d
    assert "generalises" in d.message


@pytest.mark.parametrize(("train", "validation", "test"), [(None, 0.8, 0.8), (0.9, None, None), (0.9, math.nan, None)])
def test_unknown_without_both_scores(train, validation, test):
    d = diagnose_fit("accuracy", train, validation, test)
    assert d.verdict == "unknown" and d.gap is None
    assert "need both a train and a held-out" in d.message


def test_to_dict_is_json_safe():
    d = diagnose_fit("rmse", 1.0, 2.0, 2.1, baseline=3.0)
    payload = d.to_dict()
    assert set(payload) == {"verdict", "metric", "train", "validation", "test", "gap", "message", "baseline"}
    assert json.loads(json.dumps(payload))["verdict"] == "overfitting"
    assert isinstance(d, Diagnosis)


def test_unknown_metric_is_a_spec_error():
    with pytest.raises(SpecError, match="did you mean 'accuracy'"):
        diagnose_fit("acuracy", 0.9, 0.8, None)


def test_baseline_scores_are_those_of_a_dummy_model():
    y_train = ["no"] * 6 + ["yes"] * 4
    y_eval = ["no"] * 3 + ["yes"] * 7
    classes = ["no", "yes"]
    assert baseline_score("classification", "accuracy", y_train, y_eval, classes) == pytest.approx(0.3)
    assert baseline_score("classification", "roc_auc", y_train, y_eval, classes) == pytest.approx(0.5)
    expected_log_loss = -(3 * math.log(0.6) + 7 * math.log(0.4)) / 10
    assert baseline_score("classification", "log_loss", y_train, y_eval, None) == pytest.approx(expected_log_loss)
    assert baseline_score("classification", "mcc", y_train, y_eval, classes) == 0.0
    y_reg_train, y_reg_eval = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0])
    assert baseline_score("regression", "rmse", y_reg_train, y_reg_eval, None) == pytest.approx(math.sqrt(2))
    assert baseline_score("regression", "r2", y_reg_train, y_reg_eval, None) == pytest.approx(1 - 4 / 2)
    # undefined (one class only in y_eval) -> NaN, which diagnose_fit ignores
    assert math.isnan(baseline_score("classification", "roc_auc", y_train, ["no"] * 3, classes))


def test_real_models_get_the_expected_verdicts(binary_case, regression_case):
    c = binary_case
    train = evaluate_predictions("classification", c.y_train, c.model.predict(c.X_train),
                                 c.model.predict_proba(c.X_train), c.classes)["metrics"]
    test = evaluate_predictions("classification", c.y, c.y_pred, c.proba, c.classes)["metrics"]
    base = baseline_score("classification", "accuracy", c.y_train, c.y, c.classes)
    assert diagnose_fit("accuracy", train["accuracy"], None, test["accuracy"], baseline=base).verdict == "good fit"

    # An unpruned tree on noisy labels memorises them.
    X, y = make_classification(n_samples=600, n_features=10, flip_y=0.3, random_state=0)
    tree = DecisionTreeClassifier(random_state=0).fit(X[:400], y[:400])
    d = diagnose_fit("accuracy", tree.score(X[:400], y[:400]), tree.score(X[400:], y[400:]), None,
                     baseline=baseline_score("classification", "accuracy", y[:400], y[400:], [0, 1]))
    assert d.verdict == "overfitting" and d.train == 1.0

    r = regression_case
    rmse_train = evaluate_predictions("regression", r.y_train, r.model.predict(r.X_train))["metrics"]["rmse"]
    rmse_test = evaluate_predictions("regression", r.y, r.y_pred)["metrics"]["rmse"]
    base = baseline_score("regression", "rmse", r.y_train, r.y, None)
    assert diagnose_fit("rmse", rmse_train, None, rmse_test, baseline=base).verdict == "good fit"
    # the same model judged against a baseline it barely beats is underfitting
    assert diagnose_fit("rmse", rmse_train, None, rmse_test, baseline=rmse_test * 1.02).verdict == "underfitting"
