"""Ensemble selection and stacking over out-of-fold predictions, the ensemble estimators and their packages."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from forgeml.errors import DataError, IntegrityError, SpecError
from forgeml.evaluation.metrics import get_metric
from forgeml.tuning.ensemble import (
    EnsembleClassifier,
    EnsembleRegressor,
    choose,
    greedy_selection,
    stack,
)

WINE_LABELS = np.array(["barolo", "grignolino", "barbera"])


def _classifiers():
    return [make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
            RandomForestClassifier(n_estimators=40, random_state=0, n_jobs=1),
            make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=15))]


def _regressors():
    return [make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
            RandomForestRegressor(n_estimators=40, random_state=0, n_jobs=1),
            make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=15))]


def _oof(models, X, y, classification):
    cv = (StratifiedKFold if classification else KFold)(5, shuffle=True, random_state=0)
    how = "predict_proba" if classification else "predict"
    return [cross_val_predict(m, X, y, cv=cv, method=how) for m in models]


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y.to_numpy(), [0, 1], _oof(_classifiers(), X, y, True)


@pytest.fixture(scope="module")
def wine():
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True, as_frame=True)
    y = WINE_LABELS[y.to_numpy()]
    return X, y, sorted(WINE_LABELS), _oof(_classifiers(), X, y, True)


@pytest.fixture(scope="module")
def diabetes():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y.to_numpy(), None, _oof(_regressors(), X, y, False)


def _score(metric, y, pred, classes):
    return metric(y, None, pred, classes) if classes is not None else metric(y, pred)


def _better_or_equal(metric, a, b):
    return a >= b - 1e-12 if metric.greater_is_better else a <= b + 1e-12


# ----------------------------------------------------------------------------- greedy selection


@pytest.mark.parametrize("data, metric_name", [
    ("cancer", "roc_auc"), ("cancer", "log_loss"), ("cancer", "accuracy"), ("cancer", "f1"),
    ("wine", "log_loss"), ("wine", "f1_macro"), ("diabetes", "rmse"), ("diabetes", "r2"), ("diabetes", "mae"),
])
def test_greedy_ensemble_never_scores_below_its_best_member(data, metric_name, request):
    _, y, classes, preds = request.getfixturevalue(data)
    metric = get_metric(metric_name)
    task = "regression" if classes is None else "classification"
    weights = greedy_selection(preds, y, metric, task=task, classes=classes, seed=3)
    assert weights.shape == (len(preds),) and (weights >= 0).all()
    assert weights.sum() == pytest.approx(1.0)
    blended = sum(w * p for w, p in zip(weights, preds))
    singles = [_score(metric, y, p, classes) for p in preds]
    best = max(singles) if metric.greater_is_better else min(singles)
    assert _better_or_equal(metric, _score(metric, y, blended, classes), best)
    again = greedy_selection(preds, y, metric, task=task, classes=classes, seed=3)
    assert np.array_equal(weights, again)


def test_greedy_weights_are_counts_of_picks_starting_from_the_best_member(diabetes):
    _, y, _, preds = diabetes
    rmse = get_metric("rmse")
    first = greedy_selection(preds, y, rmse, rounds=1, task="regression")
    assert first.tolist() == [float(i == int(np.argmin([rmse(y, p) for p in preds]))) for i in range(3)]
    weights = greedy_selection(preds, y, rmse, rounds=7, task="regression")
    size = next(t for t in range(1, 8) if np.allclose(weights * t, np.round(weights * t)))
    assert (weights > 0).sum() > 1 and size <= 7


def test_threshold_metrics_score_the_argmax_of_averaged_probabilities():
    y = np.array(["no", "yes", "yes"])
    sharp = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])  # accuracy 2/3
    other = np.array([[0.4, 0.6], [0.2, 0.8], [0.6, 0.4]])  # accuracy 1/3; averaged with `sharp`: 3/3
    weights = greedy_selection([sharp, other], y, get_metric("accuracy"), task="classification", classes=["no", "yes"])
    assert weights.tolist() == [0.5, 0.5]


def test_ties_between_identical_members_are_broken_by_the_seed():
    y = np.array([0, 1, 0, 1, 1])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6], [0.1, 0.9]])
    metric = get_metric("log_loss")
    picks = []
    for seed in range(8):
        kwargs = {"rounds": 5, "task": "classification", "classes": [0, 1], "seed": seed}
        weights = greedy_selection([proba] * 4, y, metric, **kwargs)
        assert sorted(weights.tolist()) == [0.0, 0.0, 0.0, 1.0]  # copies add nothing: the ensemble stays one
        assert np.array_equal(weights, greedy_selection([proba] * 4, y, metric, **kwargs))
        picks.append(int(np.argmax(weights)))
    assert len(set(picks)) > 1


# ----------------------------------------------------------------------------- stacking


def test_stack_binary_gives_honest_out_of_fold_probabilities(cancer):
    _, y, classes, preds = cancer
    stacked = stack(preds, y, task="classification", classes=classes, seed=0, cv=5)
    assert stacked.oof.shape == (len(y), 2) and np.allclose(stacked.oof.sum(axis=1), 1.0)
    assert get_metric("roc_auc")(y, None, stacked.oof, classes) > 0.98
    assert stacked.meta.coef_.shape == (1, 3)  # one feature per member: the positive class's probability
    again = stack(preds, y, task="classification", classes=classes, seed=0, cv=5)
    assert np.array_equal(stacked.oof, again.oof)


def test_stack_multiclass_with_string_labels(wine):
    _, y, classes, preds = wine
    stacked = stack(preds, y, task="classification", classes=classes, seed=1, cv=4)
    assert list(stacked.meta.classes_) == classes
    assert stacked.oof.shape == (len(y), 3) and np.allclose(stacked.oof.sum(axis=1), 1.0)
    predicted = np.asarray(classes)[stacked.oof.argmax(axis=1)]
    assert (predicted == y).mean() > 0.93


def test_stack_regression_learns_member_weights(diabetes):
    _, y, _, preds = diabetes
    stacked = stack(preds, y, task="regression", seed=0)
    assert stacked.oof.shape == (len(y),)
    assert get_metric("r2")(y, stacked.oof) > 0.4
    assert stacked.meta.coef_.shape == (3,)


# ----------------------------------------------------------------------------- choose


def test_choose_returns_none_when_one_model_dominates(cancer):
    _, y, classes, preds = cancer
    noise = np.random.default_rng(0).dirichlet([1.0, 1.0], len(y))
    for name in ("log_loss", "roc_auc"):
        metric = get_metric(name)
        plan, scores = choose([preds[0], preds[0].copy(), noise], y, metric, task="classification", classes=classes)
        assert plan is None, (name, scores)
        assert set(scores) == {"best_single", "greedy", "stacked"}
        assert scores["best_single"] == pytest.approx(metric(y, None, preds[0], classes))


def test_choose_keeps_an_ensemble_that_beats_the_best_single_model(diabetes):
    X, y, _, preds = diabetes
    rmse = get_metric("rmse")
    best = min(rmse(y, p) for p in preds)
    plan, scores = choose(preds, y, rmse, task="regression", best_score=best, seed=0)
    assert plan is not None and plan.method in ("greedy", "stacked")
    assert plan.score == scores[plan.method] < best
    assert plan.score == min(scores[m] for m in ("greedy", "stacked"))
    fitted = [clone(_regressors()[i]).fit(X, y) for i in plan.members]
    ensemble = plan.build(fitted)
    assert isinstance(ensemble, EnsembleRegressor) and ensemble.predict(X).shape == (len(y),)
    with pytest.raises(SpecError, match="got 1 fitted pipelines"):
        plan.build(fitted[:1])


def test_choose_with_only_greedy_and_a_plan_that_builds_a_classifier(wine):
    X, y, classes, preds = wine
    plan, scores = choose(preds, y, get_metric("roc_auc"), task="classification", classes=classes,
                          methods=["greedy"], best_score=0.0)  # any ensemble beats an AUC of 0
    assert "stacked" not in scores and plan is not None and plan.method == "greedy"
    assert plan.weights.sum() == pytest.approx(1.0) and len(plan.weights) == len(plan.members) > 1
    ensemble = plan.build([clone(_classifiers()[i]).fit(X, y) for i in plan.members])
    assert list(ensemble.classes_) == classes and (ensemble.predict(X) == y).mean() > 0.95


# ----------------------------------------------------------------------------- estimators


def test_ensemble_classifier_fits_from_its_own_out_of_fold_predictions(wine):
    X, y, classes, _ = wine
    train, test = np.arange(len(y)) % 3 != 0, np.arange(len(y)) % 3 == 0
    for method in ("greedy", "stacked"):
        ensemble = EnsembleClassifier(_classifiers(), method=method, metric="log_loss", cv=3, seed=0)
        ensemble.fit(X[train], y[train])
        proba = ensemble.predict_proba(X[test])
        assert proba.shape == (test.sum(), 3) and np.allclose(proba.sum(axis=1), 1.0)
        assert list(ensemble.classes_) == classes and ensemble.score(X[test], y[test]) > 0.9
        assert len(ensemble.members_) == len(ensemble.used_)
        assert all(m not in ensemble.members for m in ensemble.members_)  # fitted clones, not the templates
    params = clone(ensemble).get_params(deep=False)
    assert params["method"] == "stacked" and params["cv"] == 3 and len(params["members"]) == 3


def test_ensemble_regressor_fit_and_predict(diabetes):
    X, y, _, _ = diabetes
    ensemble = EnsembleRegressor(_regressors(), method="stacked", cv=3).fit(X.iloc[:300], y[:300])
    assert ensemble.meta_ is not None and ensemble.weights_ is None
    assert ensemble.score(X.iloc[300:], y[300:]) > 0.3


def test_classes_are_aligned_when_a_member_saw_fewer_classes(wine):
    X, y, classes, _ = wine
    partial = clone(_classifiers()[0]).fit(X[y != "barolo"], y[y != "barolo"])
    full = clone(_classifiers()[0]).fit(X, y)
    ensemble = EnsembleClassifier.from_fitted([partial, full], weights=[1, 1])
    assert list(ensemble.classes_) == classes  # the union of the members' classes, sorted
    proba = ensemble.predict_proba(X)
    barolo = classes.index("barolo")
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.allclose(proba[:, barolo], 0.5 * full.predict_proba(X)[:, list(full.classes_).index("barolo")])
    stacked = EnsembleClassifier.from_fitted(
        [partial, full], meta=stack([ensemble._member_predictions(X)[i] for i in (0, 1)], y,
                                    task="classification", classes=classes).meta, classes=classes)
    assert stacked.predict_proba(X).shape == (len(y), 3)


# ----------------------------------------------------------------------------- the saved package


def _forge_model(ensemble, X, task, classes, kinds=None):
    from forgeml.data.schema import FeatureSchema
    from forgeml.model import ForgeModel

    kinds = kinds or {c: "numeric" for c in X.columns}
    return ForgeModel(pipeline=ensemble, task=task, target="target", schema=FeatureSchema.from_frame(X, kinds),
                      family="ensemble",
                      classes=classes, metadata={"name": "ensemble"})


def test_ensembles_save_and_load_without_pickle_with_identical_predictions(wine, diabetes, tmp_path):
    import lightgbm as lgb

    from forgeml.registry.package import load_package, read_manifest, save_package

    X, y, classes, _ = wine
    gbm = Pipeline([("prepare", StandardScaler()),
                    ("model", lgb.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1))])
    members = [m.fit(X, y) for m in [*_classifiers()[::2], gbm]]
    greedy = EnsembleClassifier.from_fitted(members, weights=[0.5, 0.25, 0.25], classes=classes)
    meta = stack([greedy._member_predictions(X)[i] for i in range(3)], y, task="classification", classes=classes).meta
    stacked = EnsembleClassifier.from_fitted(members, meta=meta, classes=classes)
    Xd, yd, _, _ = diabetes
    regressor = EnsembleRegressor(_regressors(), method="stacked", cv=3).fit(Xd, yd)
    cases = [("greedy", greedy, X, "classification", classes), ("stacked", stacked, X, "classification", classes),
             ("regression", regressor, Xd, "regression", None)]
    for label, ensemble, data, task, labels in cases:
        model = _forge_model(ensemble, data, task, labels)
        manifest = save_package(model, tmp_path / label, input_example=data)
        assert manifest["estimator"]["codec"] == "ensemble" and manifest["pipeline"] is None
        files = {f["path"] for f in manifest["files"]}
        assert "ensemble.json" in files and all(f.startswith(("ensemble.", "member")) for f in files)
        assert not list((tmp_path / label).rglob("*.pkl"))
        loaded = load_package(tmp_path / label)
        assert type(loaded.pipeline) is type(ensemble)
        assert np.array_equal(loaded.predict(data), model.predict(data)), label
        if task == "classification":
            assert np.array_equal(loaded.predict_proba(data).to_numpy(), model.predict_proba(data).to_numpy())
    manifest = read_manifest(tmp_path / "greedy")
    assert {"member2.estimator.lgbm.txt", "member2.pipeline.skops"} <= {f["path"] for f in manifest["files"]}
    assert manifest["estimator"]["members"][2]["estimator"]["codec"] == "lightgbm"
    assert any(r.startswith("lightgbm==") for r in (tmp_path / "greedy" / "requirements.txt").read_text().split())
    state = json.loads((tmp_path / "greedy" / "data" / "forgeml" / "ensemble.json").read_text())
    assert state["weights"] == [0.5, 0.25, 0.25] and state["classes"] == classes

    tampered = tmp_path / "greedy" / "data" / "forgeml" / "member1.pipeline.skops"
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="member1.pipeline.skops"):
        load_package(tmp_path / "greedy")


@pytest.mark.slow
def test_ensemble_of_forgeml_pipelines_on_a_messy_table(tmp_path):
    from tables import make_churn

    from forgeml.data.profile import infer_kinds
    from forgeml.models.zoo import get_family
    from forgeml.registry.package import load_package, save_package
    from forgeml.spec import PreprocessingSpec
    from forgeml.tuning.automl import Problem, fit_pipeline, predictions

    df = make_churn(400, seed=1)
    X, y = df.drop(columns=["churn", "customer_id"]), df["churn"]
    kinds = infer_kinds(X)
    problem = Problem(task="classification", kinds=kinds, preprocessing=PreprocessingSpec(),
                      metric=get_metric("roc_auc"), classes=["no", "yes"], seed=0)
    folds = list(StratifiedKFold(4, shuffle=True, random_state=0).split(X, y))
    families = [get_family("linear"), get_family("lightgbm"), get_family("random_forest")]
    oof = []
    for family in families:
        proba = np.zeros((len(y), 2))
        for tr, va in folds:
            pipe, _ = fit_pipeline(family, {}, problem, X.iloc[tr], y.iloc[tr])
            proba[va] = predictions(pipe, X.iloc[va], problem)[1]
        oof.append(proba)
    plan, scores = choose(oof, y, problem.metric, task="classification", classes=problem.classes,
                          best_score=-1.0)  # keep the ensemble whatever it scores, to exercise build and save
    assert plan is not None and np.isfinite(scores["greedy"]) and np.isfinite(scores["stacked"])
    ensemble = plan.build([fit_pipeline(families[i], {}, problem, X, y)[0] for i in plan.members])
    model = _forge_model(ensemble, X, "classification", problem.classes, kinds)
    save_package(model, tmp_path / "churn", input_example=df)
    loaded = load_package(tmp_path / "churn")
    assert np.array_equal(loaded.predict_proba(df).to_numpy(), model.predict_proba(df).to_numpy())
    assert set(loaded.predict(df)) <= {"no", "yes"}


# ----------------------------------------------------------------------------- bad input


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_bad_input_gives_one_line_errors(cancer):
    _, y, classes, preds = cancer
    log_loss, rmse = get_metric("log_loss"), get_metric("rmse")
    kw = {"task": "classification", "classes": classes}
    short = [preds[0], preds[1][:10]]
    tiny = (np.ones((4, 2)), [0, 1, 0, 1])
    cases = [
        (DataError, "empty list", lambda: greedy_selection([], y, log_loss, **kw)),
        (DataError, r"predictions\[1\] has shape \(10, 2\)", lambda: greedy_selection(short, y, log_loss, **kw)),
        (DataError, r"shape \(569, 3\)", lambda: stack([np.ones((len(y), 3)) / 3], y, **kw)),
        (DataError, "NaN", lambda: choose([np.full((len(y), 2), np.nan)], y, log_loss, **kw)),
        (DataError, "not among classes",
         lambda: greedy_selection(preds, y, log_loss, task="classification", classes=[0, 2])),
        (SpecError, "class labels", lambda: greedy_selection(preds, y, log_loss, task="classification")),
        (SpecError, "task='ranking'", lambda: greedy_selection(preds, y, log_loss, task="ranking")),
        (SpecError, "'rmse' does not score a classification", lambda: greedy_selection(preds, y, rmse, **kw)),
        (SpecError, "rounds=0", lambda: greedy_selection(preds, y, log_loss, rounds=0, **kw)),
        (SpecError, "cv=1", lambda: stack(preds, y, cv=1, **kw)),
        (DataError, "cv=600", lambda: stack(preds, y, cv=600, **kw)),
        (SpecError, "methods=\\['vote'\\]", lambda: choose(preds, y, log_loss, methods=["vote"], **kw)),
        (SpecError, "method='vote'", lambda: EnsembleClassifier(_classifiers(), method="vote").fit(*tiny)),
        (SpecError, "members=\\[\\]", lambda: EnsembleRegressor([]).fit(np.ones((4, 2)), [0.0, 1.0, 0.0, 1.0])),
        (SpecError, "weights=\\[1.0\\]", lambda: EnsembleClassifier.from_fitted(_classifiers()[:2], weights=[1.0])),
        (SpecError, "not both or neither", lambda: EnsembleRegressor.from_fitted(_regressors())),
    ]
    for error, pattern, call in cases:
        with pytest.raises(error, match=pattern) as exc_info:
            call()
        _one_line(exc_info)


def test_regression_accepts_column_vectors_and_frames(diabetes):
    _, y, _, preds = diabetes
    as_columns = [pd.DataFrame({"pred": p}) for p in preds]
    rmse = get_metric("rmse")
    assert np.array_equal(greedy_selection(as_columns, pd.Series(y), rmse, task="regression"),
                          greedy_selection(preds, y, rmse, task="regression"))
