"""Budgeted model selection: CV and holdout scoring, budget skipping, failures, refit."""

from __future__ import annotations

import numpy as np
import pytest

from forgeml.errors import TrainingError
from forgeml.evaluation.metrics import get_metric
from forgeml.models.zoo import get_family
from forgeml.spec import PreprocessingSpec
from forgeml.tuning.automl import Deadline, Problem, aligned_proba, fit_pipeline, select_model


@pytest.fixture(scope="module")
def wine():
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    order = np.random.default_rng(0).permutation(len(data.data))  # the file is sorted by class
    X, y = data.data.iloc[order].reset_index(drop=True), data.target.map({0: "a", 1: "b", 2: "c"}).iloc[order]
    return X, y.reset_index(drop=True)


def _problem(X, y, metric="log_loss"):
    return Problem(task="classification", kinds={c: "numeric" for c in X.columns}, preprocessing=PreprocessingSpec(),
                   metric=get_metric(metric), classes=sorted(y.unique()), seed=0)


def _folds(n, k=5):
    from sklearn.model_selection import KFold

    return list(KFold(k, shuffle=True, random_state=0).split(np.arange(n)))


def test_cv_selection_scores_out_of_fold_and_refits(wine):
    X, y = wine
    problem = _problem(X, y)
    fams = [(get_family("naive_bayes"), {}), (get_family("linear"), {}), (get_family("decision_tree"), {})]
    sel = select_model(fams, problem, (X.iloc[:120], y.iloc[:120]), (X.iloc[120:], y.iloc[120:]),
                       folds=_folds(len(X)), deadline=Deadline(None), reserve=0, refit=True)
    assert sel.mode == "cv"
    scores = {c.family: c.score for c in sel.candidates}
    assert sel.winner.family == min(scores, key=scores.get)  # log_loss: lower is better
    assert sel.oof["proba"].shape == (len(X), 3)
    assert sel.pipeline.predict(X).shape == (len(X),)
    assert all(c.std is not None for c in sel.candidates)


def test_holdout_selection_with_lightgbm_early_stopping(wine):
    X, y = wine
    problem = _problem(X, y, metric="accuracy")
    sel = select_model([(get_family("lightgbm"), {"n_estimators": 500})], problem, (X.iloc[:120], y.iloc[:120]),
                       (X.iloc[120:], y.iloc[120:]), folds=None, deadline=Deadline(None), reserve=0, refit=True)
    assert sel.mode == "holdout"
    assert sel.winner.best_iteration is not None and sel.winner.best_iteration < 500
    assert sel.holdout_pipeline is not None and sel.pipeline is not sel.holdout_pipeline
    # the refit keeps the early-stopped size, scaled for the extra validation rows
    refit_trees = sel.pipeline.named_steps["model"].n_estimators
    assert sel.winner.best_iteration <= refit_trees <= int(sel.winner.best_iteration * 1.6) + 1


def test_failed_family_is_reported_and_others_still_win(wine):
    X, y = wine
    problem = _problem(X, y)
    fams = [(get_family("linear"), {"max_iter": "many"}), (get_family("naive_bayes"), {})]
    sel = select_model(fams, problem, (X, y), (X.iloc[:0], y.iloc[:0]), folds=_folds(len(X), 3),
                       deadline=Deadline(None), reserve=0, refit=True)
    statuses = {c.family: c.status for c in sel.candidates}
    assert statuses == {"linear": "failed", "naive_bayes": "ok"}
    assert sel.winner.family == "naive_bayes"


def test_with_no_time_left_the_first_candidate_still_gives_a_model(wine):
    X, y = wine
    problem = _problem(X, y)
    fams = [(get_family("lightgbm"), {}), (get_family("linear"), {}), (get_family("knn"), {})]
    sel = select_model(fams, problem, (X, y), (X.iloc[:0], y.iloc[:0]), folds=_folds(len(X), 3),
                       deadline=Deadline(1.0, start=0.0), reserve=0, refit=True)
    assert [c.status for c in sel.candidates] == ["ok", "skipped", "skipped"]
    assert sel.pipeline.predict(X).shape == (len(X),)


def test_all_candidates_failing_raises_a_training_error(wine):
    from forgeml.errors import SpecError
    from forgeml.models.zoo import Family

    X, y = wine
    problem = _problem(X, y)
    with pytest.raises(SpecError, match="invalid hyperparameter"):  # the user's own mistake, said as it is
        select_model([(get_family("linear"), {"max_iter": "many"})], problem, (X, y), (X.iloc[:0], y.iloc[:0]),
                     folds=_folds(len(X), 3), deadline=Deadline(None), reserve=0, refit=True)

    def broken(task, params, seed):
        raise RuntimeError("library crashed")

    with pytest.raises(TrainingError, match="no model could be trained.*broken: RuntimeError: library crashed"):
        select_model([(Family("broken", ("classification",), broken), {})], problem, (X, y), (X.iloc[:0], y.iloc[:0]),
                     folds=_folds(len(X), 3), deadline=Deadline(None), reserve=0, refit=True)


def test_forests_stop_growing_at_their_deadline(wine):
    X, y = wine
    problem = _problem(X, y)
    fit, grown = fit_pipeline(get_family("random_forest"), {"n_estimators": 5000}, problem, X, y,
                              deadline=Deadline(0.5))
    assert 0 < grown < 5000
    assert len(fit.named_steps["model"].estimators_) == grown
    assert fit.named_steps["model"].get_params()["warm_start"] is False


def test_budget_skips_candidates_that_would_not_finish(wine):
    X, y = wine
    problem = _problem(X, y)
    fams = [(get_family("decision_tree"), {}), (get_family("svm"), {}), (get_family("random_forest"), {"n_estimators": 2000})]
    sel = select_model(fams, problem, (X, y), (X.iloc[:0], y.iloc[:0]), folds=_folds(len(X), 5),
                       deadline=Deadline(0.8), reserve=0.2, refit=True)
    statuses = {c.family: c.status for c in sel.candidates}
    assert statuses["decision_tree"] == "ok"
    assert "skipped" in statuses.values() or "timeout" in statuses.values()


def test_aligned_proba_fills_unseen_classes(wine):
    X, y = wine
    sub = y != "c"
    pipe = get_family("naive_bayes").make("classification", {}, 0).fit(X[sub], y[sub])
    proba = aligned_proba(pipe, X, ["a", "b", "c"])
    assert proba.shape == (len(X), 3) and np.all(proba[:, 2] == 0)


def test_integer_class_labels_are_scored_like_strings():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True, as_frame=True)
    X, y = X.iloc[:400], y.iloc[:400]
    problem = Problem(task="classification", kinds={c: "numeric" for c in X.columns}, preprocessing=PreprocessingSpec(),
                      metric=get_metric("accuracy"), classes=sorted(y.unique().tolist()), seed=0)
    sel = select_model([(get_family("linear"), {})], problem, (X, y), (X.iloc[:0], y.iloc[:0]), folds=_folds(len(X), 3),
                       deadline=Deadline(None), reserve=0, refit=True)
    assert sel.winner.score > 0.9
    assert sel.oof["y_pred"].dtype.kind == "i"


@pytest.mark.parametrize("family", ["catboost", "xgboost"])
def test_holdout_selection_with_catboost_and_xgboost_early_stopping(family, wine):
    X, y = wine
    problem = _problem(X, y, metric="accuracy")
    sel = select_model([(get_family(family), {"n_estimators": 1000, "learning_rate": 0.3})], problem,
                       (X.iloc[:120], y.iloc[:120]), (X.iloc[120:], y.iloc[120:]), folds=None, deadline=Deadline(None),
                       reserve=0, refit=True)
    assert sel.winner.score > 0.85
    assert sel.winner.best_iteration is not None and sel.winner.best_iteration < 1000
    assert sel.holdout_pipeline.named_steps["model"].n_estimators_ == sel.winner.best_iteration
    # the refit keeps the early-stopped size, scaled for the extra validation rows, with no early stopping
    refit = sel.pipeline.named_steps["model"]
    assert refit.estimator.get_params()["n_estimators"] == refit.n_estimators_ == round(sel.winner.best_iteration * len(X) / 120)
    assert list(sel.pipeline.classes_) == ["a", "b", "c"]
    assert refit.estimator.get_params()["thread_count" if family == "catboost" else "n_jobs"] == 1  # small data


@pytest.mark.parametrize("family", ["catboost", "xgboost"])
def test_boosting_stops_adding_trees_at_its_deadline(family, wine):
    X, y = wine
    problem = _problem(X, y)
    fit, trees = fit_pipeline(get_family(family), {"n_estimators": 1000}, problem, X, y, X, y,
                              deadline=Deadline(1.0, start=0.0))  # long past: one round, then the callback stops
    assert trees == 1 and fit.named_steps["model"].n_estimators_ == 1
    assert fit.predict_proba(X).shape == (len(X), 3)


def test_an_ensemble_is_kept_only_when_it_beats_the_best_single_model(wine):
    X, y = wine
    problem = _problem(X, y)
    fams = [(get_family("naive_bayes"), {}), (get_family("linear"), {}), (get_family("decision_tree"), {}),
            (get_family("knn"), {})]
    sel = select_model(fams, problem, (X, y), (X.iloc[:0], y.iloc[:0]), folds=_folds(len(X), 5),
                       deadline=Deadline(None), reserve=0, refit=True, ensemble=True)
    board = sel.leaderboard.set_index("family")
    singles = board.drop(index="ensemble")
    best_single = singles["score"].min()  # log_loss: lower is better
    row = board.loc["ensemble"]
    assert row["config"] in {"greedy", "stacked"} and np.isfinite(row["score"])
    if sel.ensemble:
        assert row["status"] == "ok" and row["score"] < best_single
        assert sel.winner.family == "ensemble" and sel.oof["proba"].shape == (len(X), 3)
        proba = sel.pipeline.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    else:
        assert row["status"] == "skipped" and "does not beat" in row["note"]
    assert singles["predict_time_per_row"].gt(0).all()  # every scored candidate says what a prediction costs


def test_tuning_the_leader_adds_trials_as_candidates(wine):
    X, y = wine
    problem = _problem(X, y)
    sel = select_model([(get_family("decision_tree"), {}), (get_family("naive_bayes"), {})], problem, (X, y),
                       (X.iloc[:0], y.iloc[:0]), folds=_folds(len(X), 3), deadline=Deadline(20), reserve=0, refit=True,
                       tune_share=0.5)
    tuned = sel.leaderboard[sel.leaderboard["config"].str.startswith("tuned")]
    leader = sel.leaderboard.iloc[:2].sort_values("score").iloc[0]["family"]
    assert 3 <= len(tuned) <= 40 and set(tuned["family"]) == {leader}
    assert tuned["status"].eq("ok").mean() > 0.9


def test_repeated_cross_validation_averages_each_rows_predictions(wine):
    from forgeml.data.split import cv_folds
    from forgeml.spec import SplitSpec

    X, y = wine
    frame = X.assign(label=y.to_numpy())
    folds = cv_folds(frame, "label", SplitSpec(folds=3, repeats=2), "classification", seed=0)
    assert len(folds) == 6
    assert all(np.bincount(np.concatenate([va for _, va in folds]), minlength=len(X)) == 2)
    problem = _problem(X, y)
    sel = select_model([(get_family("linear"), {})], problem, (X, y), (X.iloc[:0], y.iloc[:0]), folds=folds,
                       deadline=Deadline(None), reserve=0, refit=True)
    np.testing.assert_allclose(sel.oof["proba"].sum(axis=1), 1.0)
    assert sel.winner.std is not None and sel.winner.std > 0
    with pytest.raises(ValueError, match="repeats > 1 reshuffles folds"):
        SplitSpec(time_column="t", repeats=2)
