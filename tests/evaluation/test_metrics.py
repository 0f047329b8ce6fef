from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from forgeml.errors import SpecError
from forgeml.evaluation.metrics import (
    check_metric_fits,
    default_metric,
    evaluate_predictions,
    get_metric,
    is_better,
    metric_names,
    metrics_for,
    score,
)

CLASSIFICATION = {
    "accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "f1", "precision",
    "recall", "roc_auc", "pr_auc", "log_loss", "mcc",
}
REGRESSION = {"mse", "rmse", "mae", "r2", "mape", "median_ae"}


def test_registry_lists_every_metric_sorted():
    names = metric_names()
    assert names == sorted(names)
    assert set(names) == CLASSIFICATION | REGRESSION
    assert get_metric("log_loss").needs_proba and not get_metric("log_loss").greater_is_better
    assert get_metric("f1").binary_only and not get_metric("f1_macro").binary_only


@pytest.mark.parametrize(("typo", "suggestion"), [("ROC_AUC", "roc_auc"), ("acuracy", "accuracy"), ("rmsee", "rmse")])
def test_unknown_metric_suggests_the_close_name(typo, suggestion):
    with pytest.raises(SpecError, match=f"unknown metric '{typo}'; did you mean '{suggestion}'.*known: accuracy"):
        get_metric(typo)


def test_hand_computed_values():
    # 4 rows, one positive ranked below a negative: AUC = 3/4.
    assert get_metric("roc_auc")([0, 0, 1, 1], proba=np.array([0.1, 0.4, 0.35, 0.8]), classes=[0, 1]) == 0.75
    assert get_metric("accuracy")(["a", "b", "b"], ["a", "b", "a"]) == pytest.approx(2 / 3)
    assert get_metric("rmse")([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert get_metric("mae")([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3)
    # Positive class is classes[1] = "yes": tp=1, fp=1, fn=1.
    assert get_metric("f1")(["yes", "no", "yes", "no"], ["yes", "yes", "no", "no"], classes=["no", "yes"]) == 0.5
    # log loss of a perfectly confident-and-right row is 0, of a 50/50 row ln 2.
    assert get_metric("log_loss")(["a", "b"], proba=[[1.0, 0.0], [0.5, 0.5]], classes=["a", "b"]) == pytest.approx(
        math.log(2) / 2
    )


def test_mape_is_a_fraction_and_skips_zero_targets():
    # Rows with y=0 are skipped: |2-1|/2 = 0.5 and |4-4|/4 = 0.
    assert get_metric("mape")([2, 0, 4], [1, 3, 4]) == pytest.approx(0.25)
    result = evaluate_predictions("regression", [0.0, 0.0], [1.0, 2.0])
    assert "mape" not in result["metrics"] and "mae" in result["metrics"]


def test_binary_metrics_match_scikit_learn_with_string_labels(binary_case):
    c = binary_case
    pos = c.classes[1]
    assert c.classes == ["benign", "malignant"]
    got = evaluate_predictions("classification", c.y, c.y_pred, c.proba, c.classes)["metrics"]
    expected = {
        "accuracy": skm.accuracy_score(c.y, c.y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(c.y, c.y_pred),
        "precision_macro": skm.precision_score(c.y, c.y_pred, average="macro"),
        "recall_macro": skm.recall_score(c.y, c.y_pred, average="macro"),
        "f1_macro": skm.f1_score(c.y, c.y_pred, average="macro"),
        "f1": skm.f1_score(c.y, c.y_pred, pos_label=pos),
        "precision": skm.precision_score(c.y, c.y_pred, pos_label=pos),
        "recall": skm.recall_score(c.y, c.y_pred, pos_label=pos),
        "roc_auc": skm.roc_auc_score(c.y == pos, c.proba[:, 1]),
        "pr_auc": skm.average_precision_score(c.y == pos, c.proba[:, 1]),
        "log_loss": skm.log_loss(c.y, c.proba, labels=c.classes),
        "mcc": skm.matthews_corrcoef(c.y, c.y_pred),
    }
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name
    assert 0.9 < got["roc_auc"] < 1.0


def test_binary_proba_may_be_the_positive_column_only(binary_case):
    c = binary_case
    roc_auc = get_metric("roc_auc")
    assert roc_auc(c.y, proba=c.proba[:, 1], classes=c.classes) == roc_auc(c.y, proba=c.proba, classes=c.classes)
    # labels are derived from the probabilities when y_pred is not given
    assert get_metric("accuracy")(c.y, proba=c.proba, classes=c.classes) == skm.accuracy_score(c.y, c.y_pred)


def test_multiclass_metrics_match_scikit_learn_with_string_labels(multiclass_case):
    c = multiclass_case
    got = evaluate_predictions("classification", c.y, c.y_pred, c.proba, c.classes)["metrics"]
    assert not {"f1", "precision", "recall"} & set(got)
    onehot = np.column_stack([c.y == k for k in c.classes])
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(c.y, c.proba, multi_class="ovr", labels=c.classes))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(onehot, c.proba, average="macro"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(c.y, c.proba, labels=c.classes))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(c.y, c.y_pred, average="macro"))
    assert got["mcc"] == pytest.approx(skm.matthews_corrcoef(c.y, c.y_pred))
    assert got["accuracy"] < 1.0


def test_binary_only_metric_refuses_multiclass(multiclass_case):
    c = multiclass_case
    with pytest.raises(ValueError, match="binary"):
        get_metric("f1")(c.y, c.y_pred, classes=c.classes)
    with pytest.raises(SpecError, match="'f1' needs a binary target.*3 classes; use 'f1_macro'"):
        check_metric_fits("f1", "classification", 3)
    with pytest.raises(SpecError, match="'f1' needs a binary target"):
        score("f1", "classification", c.y, c.y_pred, classes=c.classes)


def test_metric_must_fit_the_task():
    with pytest.raises(SpecError, match="'rmse' is for regression, but this is a classification task; choose one of: "
                                        "accuracy"):
        check_metric_fits("rmse", "classification", 2)
    with pytest.raises(SpecError, match="'accuracy' is for classification"):
        check_metric_fits("accuracy", "regression")
    assert check_metric_fits("roc_auc", "classification", 5).name == "roc_auc"
    assert check_metric_fits("pr_auc", "classification", 3).name == "pr_auc"
    with pytest.raises(SpecError, match="unknown task 'clasification'; did you mean 'classification'"):
        metrics_for("clasification", 2)


def test_absent_class_leaves_out_what_cannot_be_computed():
    classes = ["a", "b", "c"]
    y_true = np.array(["a", "b", "a", "b"])  # "c" never occurs
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.2, 0.3], [0.3, 0.3, 0.4]])
    y_pred = np.array(classes)[proba.argmax(axis=1)]
    result = evaluate_predictions("classification", y_true, y_pred, proba, classes)
    metrics = result["metrics"]
    assert "roc_auc" not in metrics and "pr_auc" not in metrics
    assert metrics["accuracy"] == 0.75
    assert metrics["log_loss"] == pytest.approx(skm.log_loss(y_true, proba, labels=classes))
    assert result["per_class"]["c"]["support"] == 0
    assert result["confusion_matrix"] == {"labels": classes, "matrix": [[2, 0, 0], [0, 1, 1], [0, 0, 0]]}
    with pytest.raises(ValueError, match="absent"):
        get_metric("roc_auc")(y_true, proba=proba, classes=classes)


def test_single_class_and_single_row_are_safe():
    binary = evaluate_predictions("classification", [1, 1], [1, 0], [[0.2, 0.8], [0.6, 0.4]], [0, 1])
    assert "roc_auc" not in binary["metrics"] and binary["metrics"]["accuracy"] == 0.5
    regression = evaluate_predictions("regression", [3.0], [2.5])
    assert "r2" not in regression["metrics"] and regression["metrics"]["mae"] == 0.5
    # no proba: proba metrics are simply absent
    no_proba = evaluate_predictions("classification", ["x", "y"], ["x", "x"])
    assert "log_loss" not in no_proba["metrics"] and no_proba["metrics"]["accuracy"] == 0.5


def test_evaluation_is_json_safe_with_integer_labels(binary_case):
    c = binary_case
    y = (c.y == "malignant").astype(np.int64)
    y_pred = (c.y_pred == "malignant").astype(np.int64)
    classes = list(np.array([0, 1], dtype=np.int64))
    result = evaluate_predictions("classification", y, y_pred, c.proba, classes)
    text = json.dumps(result, allow_nan=False)
    back = json.loads(text)
    assert back["confusion_matrix"]["labels"] == [0, 1]
    matrix = np.array(back["confusion_matrix"]["matrix"])
    assert matrix.sum() == len(y) and (matrix == skm.confusion_matrix(y, y_pred)).all()
    support = back["per_class"]["1"]["support"]
    assert support == int(y.sum())
    assert back["per_class"]["1"]["recall"] == pytest.approx(skm.recall_score(y, y_pred))


def test_regression_matches_scikit_learn(regression_case):
    c = regression_case
    result = evaluate_predictions("regression", c.y, c.y_pred)
    got = result["metrics"]
    assert got["mse"] == pytest.approx(skm.mean_squared_error(c.y, c.y_pred))
    assert got["rmse"] == pytest.approx(math.sqrt(got["mse"]))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(c.y, c.y_pred))
    assert got["r2"] == pytest.approx(skm.r2_score(c.y, c.y_pred))
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(c.y, c.y_pred))
    assert got["median_ae"] == pytest.approx(skm.median_absolute_error(c.y, c.y_pred))
    assert 0.3 < got["r2"] < 0.7
    residuals = c.y - c.y_pred
    summary = result["residuals_summary"]
    assert summary["mean"] == pytest.approx(residuals.mean())
    assert summary["std"] == pytest.approx(residuals.std())
    assert summary["p5"] == pytest.approx(np.percentile(residuals, 5))
    assert summary["p95"] == pytest.approx(np.percentile(residuals, 95))
    assert result["n_samples"] == len(c.y)
    json.dumps(result, allow_nan=False)


def test_defaults_and_applicable_metrics():
    assert default_metric("classification", 2) == "roc_auc"
    assert default_metric("classification", 4) == "log_loss"
    assert default_metric("regression", None) == "rmse"
    assert {m.name for m in metrics_for("classification", 2)} == CLASSIFICATION
    assert {m.name for m in metrics_for("classification", 3)} == CLASSIFICATION - {"f1", "precision", "recall"}
    assert {m.name for m in metrics_for("regression")} == REGRESSION


def test_is_better_follows_the_metric_direction():
    assert is_better("accuracy", 0.9, 0.8) and not is_better("accuracy", 0.8, 0.9)
    assert is_better("rmse", 1.0, 2.0) and not is_better("log_loss", 0.7, 0.3)
    assert not is_better("r2", 0.5, 0.5)
    assert is_better("rmse", 3.0, None) and is_better("rmse", 3.0, float("nan"))
    assert not is_better("rmse", None, 3.0) and not is_better("accuracy", float("nan"), 0.1)


def test_score_convenience(binary_case, regression_case):
    c = binary_case
    assert score("roc_auc", "classification", c.y, c.y_pred, c.proba, c.classes) == pytest.approx(
        skm.roc_auc_score(c.y == "malignant", c.proba[:, 1])
    )
    r = regression_case
    assert score("r2", "regression", r.y, r.y_pred) == pytest.approx(skm.r2_score(r.y, r.y_pred))
    with pytest.raises(SpecError):
        score("rmse", "classification", c.y, c.y_pred)


def test_training_spec_validates_metric_names():
    from forgeml.spec import TrainingSpec

    assert TrainingSpec(metric="pr_auc").metric == "pr_auc"
    with pytest.raises(ValueError, match="did you mean 'rmse'"):
        TrainingSpec(metric="RMSE")
