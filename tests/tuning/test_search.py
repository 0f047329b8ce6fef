"""Hyperparameter search: spaces from the zoo and the spec, samplers on known functions, pruning, the study store."""

from __future__ import annotations

import numpy as np
import pytest

from forgeml.errors import SpecError
from forgeml.evaluation.metrics import get_metric
from forgeml.models.zoo import Choice, Family, Float, Int, get_family
from forgeml.spec import PreprocessingSpec, spec_from_dict
from forgeml.tuning.automl import Problem
from forgeml.tuning.search import (
    Dim,
    Fixed,
    Objective,
    TrialData,
    default_point,
    family_space,
    grid_values,
    make_pruner,
    make_sampler,
    open_storage,
    open_study,
    parse_space,
    run_trials,
    study_storage_url,
    suggest,
)

# ----------------------------------------------------------------------------- samplers on a known function

BOWL = {"x": {"low": -5.0, "high": 5.0}, "y": {"low": -5.0, "high": 5.0}}  # minimum 0 at (1, -2)


def _bowl(space):
    def objective(trial):
        p = suggest(trial, space)
        return (p["x"] - 1) ** 2 + (p["y"] + 2) ** 2

    return objective


def _best(sampler: str, seed: int, trials: int = 40) -> float:
    space = parse_space(BOWL)
    study = open_study(f"bowl-{sampler}-{seed}", direction="minimize",
                       sampler=make_sampler(sampler, space, seed=seed, trials=trials))
    run_trials(study, _bowl(space), trials=trials)
    assert len(study.trials) == trials
    return study.best_value


def test_grid_finds_the_exact_optimum_of_a_quadratic():
    space = parse_space({"x": {"low": 0.0, "high": 1.0}, "k": {"low": 0, "high": 6}})
    assert grid_values(space, 5) == {"x": [0.0, 0.25, 0.5, 0.75, 1.0], "k": [0, 2, 3, 4, 6]}
    study = open_study("grid", direction="minimize", sampler=make_sampler("grid", space, seed=0, grid_points=5))

    def objective(trial):
        p = suggest(trial, space)
        return (p["x"] - 0.5) ** 2 + (p["k"] - 3) ** 2

    run_trials(study, objective, trials=100)  # the grid ends the study when it is exhausted
    assert len(study.trials) == 25
    assert study.best_value == 0.0 and study.best_params == {"x": 0.5, "k": 3}


def test_random_and_tpe_get_close_and_tpe_beats_random_on_average():
    random_best = [_best("random", seed) for seed in range(5)]
    tpe_best = [_best("tpe", seed) for seed in range(5)]
    assert max(random_best) < 2.0 and max(tpe_best) < 0.5
    assert np.mean(tpe_best) < 0.5 * np.mean(random_best)
    assert _best("tpe", 3) == tpe_best[3]  # seeded: the same search again


def test_conditional_parameters_are_sampled_only_when_their_condition_holds():
    space = parse_space({"kernel": ["rbf", "linear"], "gamma": {"low": 1e-4, "high": 1, "log": True, "when": {"kernel": "rbf"}}})
    assert space["gamma"] == Dim(Float(1e-4, 1.0, True), (("kernel", ("rbf",)),))
    study = open_study("cond", direction="minimize", sampler=make_sampler("tpe", space, seed=0, trials=20))
    seen = []

    def objective(trial):
        p = suggest(trial, space)
        seen.append(p)
        return p.get("gamma", 0.5)

    run_trials(study, objective, trials=20)
    assert {p["kernel"] for p in seen} == {"rbf", "linear"}
    assert all(("gamma" in p) == (p["kernel"] == "rbf") for p in seen)


def test_choices_of_lists_and_fixed_values_pass_through_optuna():
    space = parse_space({"hidden_sizes": [[64], [128, 64]], "dropout": 0.2})
    assert space["hidden_sizes"].dist == Choice(((64,), (128, 64))) and space["dropout"].dist == Fixed(0.2)
    study = open_study("lists", direction="minimize", sampler=make_sampler("grid", space, seed=0))
    got = []
    run_trials(study, lambda t: got.append(suggest(t, space)) or 0.0, trials=5)
    assert sorted(p["hidden_sizes"] for p in got) == [(64,), (128, 64)]
    assert all(p["dropout"] == 0.2 for p in got)


# ----------------------------------------------------------------------------- spaces from the zoo and the spec


def test_spec_forms_parse_to_ranges_choices_fixed_and_conditions():
    space = parse_space({"num_leaves": {"low": 8, "high": 128, "log": True}, "reg_lambda": {"low": 0, "high": 10},
                         "boosting_type": ["gbdt", "dart"], "max_depth": 8, "subsample": {"value": 0.9}},
                        get_family("lightgbm").space)
    assert space["num_leaves"].dist == Int(8, 128, True)
    assert space["reg_lambda"].dist == Float(0.0, 10.0)  # the zoo's reg_lambda is a float range
    assert space["boosting_type"].dist == Choice(("gbdt", "dart"))
    assert space["max_depth"].dist == Fixed(8) and space["subsample"].dist == Fixed(0.9)


def test_family_space_merges_the_zoo_the_spec_and_pinned_params():
    lgbm = get_family("lightgbm")
    space = family_space(lgbm, "classification", {"num_leaves": 15}, {"learning_rate": {"low": 0.05, "high": 0.2}})
    assert "num_leaves" not in space  # pinned in models[].params
    assert space["learning_rate"].dist == Float(0.05, 0.2)
    assert set(space) == set(lgbm.space) - {"num_leaves"}
    linear = get_family("linear")
    clf = family_space(linear, "classification", {}, None)
    assert "alpha" not in clf and "C" in clf  # a classifier takes C, a regressor alpha
    assert clf["l1_ratio"].when == (("penalty", ("elasticnet",)),)
    assert "C" not in family_space(linear, "regression", {}, None)
    assert "l1_ratio" not in family_space(linear, "classification", {"penalty": "l2"}, None)  # its condition cannot hold


def test_default_point_is_the_family_default_clipped_into_the_space():
    lgbm = get_family("lightgbm")
    space = family_space(lgbm, "classification", {}, None)
    point = default_point(lgbm, "classification", {}, space)
    assert point["learning_rate"] == 0.05 and point["num_leaves"] == 31 and point["min_child_samples"] == 10
    assert point["reg_lambda"] == 1e-8  # LightGBM's 0.0, at the bottom of the log range


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"num_leafs": {"low": 4, "high": 64}}, "tuning.spaces.lightgbm.num_leafs: unknown hyperparameter 'num_leafs' for 'lightgbm'; did you mean 'num_leaves'?"),
        ({"num_leaves": {"low": 300, "high": 4}}, "tuning.spaces.lightgbm: 'num_leaves': low (300) is greater than high (4); swap them"),
        ({"learning_rate": {"low": 0, "high": 0.1, "log": True}}, "a log range needs low > 0; got low=0"),
        ({"learning_rate": {"lo": 0.01, "high": 0.1}}, "unknown key 'lo'; did you mean 'low'"),
        ({"learning_rate": {"low": "a", "high": 0.1}}, "a range needs numbers low and high"),
        ({"boosting_type": []}, "choices must be a non-empty list"),
        ({"learning_rate": {"low": 0.01, "high": 0.1, "when": {"boosting": "dart"}}}, "when refers to 'boosting', which is not in the search space"),
    ],
)
def test_bad_spaces_are_one_line_spec_errors(override, message):
    with pytest.raises(SpecError) as info:
        family_space(get_family("lightgbm"), "classification", {}, override)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_spec_validates_spaces_before_any_data_is_read():
    with pytest.raises(SpecError, match="tuning.spaces: unknown model family 'lightgbn'; did you mean 'lightgbm'"):
        spec_from_dict({"tuning": {"spaces": {"lightgbn": {}}}})
    with pytest.raises(SpecError, match=r"tuning.spaces: lightgbm 'num_leaves': low \(64\) is greater than high \(8\)"):
        spec_from_dict({"tuning": {"spaces": {"lightgbm": {"num_leaves": {"low": 64, "high": 8}}}}})
    with pytest.raises(SpecError, match="tuning.sampler: Input should be 'tpe', 'random' or 'grid' .*got 'bayes'"):
        spec_from_dict({"tuning": {"sampler": "bayes"}})


def test_a_family_without_a_search_space_says_how_to_give_one():
    bare = Family("bare_tree", ("classification",), get_family("decision_tree").build)
    with pytest.raises(SpecError, match="model family 'bare_tree' has no search space for classification; give one in tuning.spaces.bare_tree"):
        family_space(bare, "classification", {}, None)
    assert set(family_space(bare, "classification", {}, {"max_depth": {"low": 2, "high": 8}})) == {"max_depth"}


def test_unknown_sampler_and_pruner():
    with pytest.raises(SpecError, match="unknown sampler 'tpee'; did you mean 'tpe'"):
        make_sampler("tpee", {}, seed=0)
    with pytest.raises(SpecError, match="unknown pruner 'medain'; did you mean 'median'"):
        make_pruner("medain")


# ----------------------------------------------------------------------------- the study database


def test_studies_live_beside_the_store(monkeypatch, tmp_path):
    monkeypatch.setenv("FORGEML_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FORGEML_STUDY_URI", raising=False)
    assert study_storage_url() == f"sqlite:///{(tmp_path / 'home' / 'studies.db').as_posix()}"
    monkeypatch.setenv("FORGEML_TRACKING_URI", "postgresql+psycopg://ml:secret@db.example:5432/forgeml")
    url = study_storage_url()
    assert url.startswith("postgresql+psycopg://ml:secret@db.example:5432/forgeml?options=")
    assert "search_path%3Dforgeml_studies" in url  # its own schema: MLflow's alembic_version stays apart
    monkeypatch.setenv("FORGEML_TRACKING_URI", f"sqlite:///{tmp_path}/store/mlflow.db")
    assert study_storage_url() == f"sqlite:///{tmp_path}/store/studies.db"
    monkeypatch.setenv("FORGEML_STUDY_URI", "sqlite:////srv/studies.db")
    assert study_storage_url() == "sqlite:////srv/studies.db"


def test_a_second_process_joins_the_same_study(tmp_path):
    url = f"sqlite:///{tmp_path}/studies.db"
    space = parse_space(BOWL)
    first = open_study("shared", direction="minimize", sampler=make_sampler("random", space, seed=0), storage=open_storage(url))
    run_trials(first, _bowl(space), trials=4)
    again = open_study("shared", direction="minimize", sampler=make_sampler("random", space, seed=1), storage=open_storage(url))
    assert len(again.trials) == 4
    run_trials(again, _bowl(space), trials=6)  # the count is the study's, not this process's
    assert len(again.trials) == 6
    with pytest.raises(SpecError, match="study 'shared' exists with another objective"):
        open_study("shared", direction="maximize", storage=open_storage(url))


# ----------------------------------------------------------------------------- the objective on real data


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    order = np.random.default_rng(0).permutation(len(data.data))
    X, y = data.data.iloc[order].reset_index(drop=True), data.target.iloc[order].map({0: "malignant", 1: "benign"})
    return X, y.reset_index(drop=True)


def _problem(X, y, metric="roc_auc"):
    return Problem(task="classification", kinds={c: "numeric" for c in X.columns}, preprocessing=PreprocessingSpec(),
                   metric=get_metric(metric), classes=sorted(y.unique()), seed=0)


def _folds(n, k=3):
    from sklearn.model_selection import KFold

    return list(KFold(k, shuffle=True, random_state=0).split(np.arange(n)))


def _search(family, base, override, problem, data, *, sampler="random", pruner="none", trials=12, every=10):
    space = family_space(family, problem.task, base, override)
    study = open_study("objective", direction="maximize" if problem.metric.greater_is_better else "minimize",
                       sampler=make_sampler(sampler, space, seed=0, trials=trials), pruner=make_pruner(pruner))
    run_trials(study, Objective(family, base, space, problem, data, report_every=every), trials=trials)
    return study


PRUNE_BASE = {"n_estimators": 300, "early_stopping_rounds": 30}
PRUNE_SPACE = {"learning_rate": {"low": 1e-4, "high": 0.3, "log": True}, "num_leaves": {"low": 4, "high": 32}}


def _pruning_search(cancer, pruner):
    X, y = cancer
    data = TrialData(X.iloc[:400], y.iloc[:400], X_val=X.iloc[400:], y_val=y.iloc[400:])
    return _search(get_family("lightgbm"), PRUNE_BASE, PRUNE_SPACE, _problem(X, y, "log_loss"), data, pruner=pruner, trials=20)


@pytest.fixture(scope="module")
def unpruned(cancer):
    return _pruning_search(cancer, "none")


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruning_stops_bad_lightgbm_trials_and_saves_boosting_rounds(cancer, unpruned, pruner):
    pruned = _pruning_search(cancer, pruner)
    states = [t.state.name for t in pruned.trials]
    assert states.count("PRUNED") >= 5 and "PRUNED" not in [t.state.name for t in unpruned.trials]
    rounds = {name: sum(t.user_attrs["iterations"] for t in study.trials) for name, study in (("plain", unpruned), ("pruned", pruned))}
    assert rounds["pruned"] < 0.75 * rounds["plain"]  # boosting rounds grown over all 20 trials
    # the same configurations were tried (same seed), and pruning kept the best of them
    assert [t.params for t in unpruned.trials] == [t.params for t in pruned.trials]
    assert pruned.best_value == pytest.approx(unpruned.best_value)
    reported = pruned.trials[0].intermediate_values
    assert sorted(reported)[:3] == [1, 2, 3]  # every 10 trees, signed so the study's direction applies


def test_classic_families_report_per_cv_fold_and_failures_do_not_stop_the_study(cancer):
    X, y = cancer
    problem = _problem(X, y, "accuracy")
    data = TrialData(X, y, folds=_folds(len(X)))
    pinned = {"min_samples_leaf": 5, "ccp_alpha": 0.0}  # the grid is max_depth x class_weight
    study = _search(get_family("decision_tree"), pinned, {"max_depth": [2, 4], "class_weight": [None, {"nope": 2}]},
                    problem, data, sampler="grid", trials=4)
    by_state = {}
    for t in study.trials:
        by_state.setdefault(t.state.name, []).append(t)
    assert len(by_state["COMPLETE"]) == 2 and len(by_state["FAIL"]) == 2
    assert all(sorted(t.intermediate_values) == [0, 1, 2] for t in by_state["COMPLETE"])
    assert all("not in class_weight" in t.user_attrs["error"] for t in by_state["FAIL"])
    assert study.best_trial.user_attrs["std"] > 0


def test_a_configuration_met_again_reuses_its_score(cancer):
    X, y = cancer
    problem = _problem(X, y, "accuracy")
    data = TrialData(X.iloc[:300], y.iloc[:300], folds=_folds(300))
    override = {"kernel": ["rbf", "linear"], "gamma": {"low": 1e-3, "high": 1e-1, "log": True, "when": {"kernel": "rbf"}}}
    study = _search(get_family("svm"), {"C": 1.0}, override, problem, data, sampler="grid", trials=20)
    assert len(study.trials) == 10  # 2 kernels x 5 gammas in the grid
    linear = [t for t in study.trials if t.params["kernel"] == "linear"]
    assert len(linear) == 5 and sum("duplicate_of" in t.user_attrs for t in linear) == 4  # one fit, four reuses
    assert len({t.value for t in linear}) == 1


def test_neural_trials_report_every_epoch(cancer):
    pytest.importorskip("torch")
    X, y = cancer
    problem = _problem(X, y, "log_loss")
    data = TrialData(X.iloc[:300], y.iloc[:300], X_val=X.iloc[300:400], y_val=y.iloc[300:400])
    study = _search(get_family("mlp"), {"epochs": 4}, {"hidden_sizes": [[16]], "learning_rate": {"low": 1e-3, "high": 1e-2}},
                    problem, data, trials=2)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert all(sorted(t.intermediate_values) == [1, 2, 3, 4] and t.user_attrs["iterations"] == 4 for t in study.trials)
