"""The Python API end to end: train → register → load → predict/evaluate, on real and messy data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import forgeml
from forgeml.errors import DataError, SchemaError, SpecError
from forgeml.registry.store import Store

from tables import make_churn, make_prices


@pytest.fixture(scope="module")
def cancer_result():
    return forgeml.train("sklearn://breast_cancer", target="target", models="linear,lightgbm",
                         time_limit=60, name="cancer")


def test_train_registers_a_version_with_a_leaderboard_and_report(cancer_result):
    r = cancer_result
    assert r.version is not None and r.run_id
    assert set(r.leaderboard["family"]) == {"linear", "lightgbm"}
    assert r.leaderboard.loc[0, "rank"] == 1
    assert r.metric == "roc_auc"
    assert r.metrics["roc_auc"] > 0.95 and r.metrics["accuracy"] > 0.9
    assert set(r.evaluation) == {"train", "validation", "test"}
    assert r.diagnosis["verdict"] in {"good fit", "overfitting", "underfitting", "unknown"}
    assert r.report_path.is_file() and "<html" in r.report_path.read_text()[:500].lower()
    assert 0 < r.fit_seconds < r.elapsed


def test_load_gives_identical_predictions(cancer_result):
    df = forgeml.pipeline._read("sklearn://breast_cancer", cancer_result.spec)[0].drop(columns=["target"])
    loaded = forgeml.load(f"cancer/{cancer_result.version}")
    assert loaded.version == cancer_result.version
    np.testing.assert_array_equal(loaded.predict(df), cancer_result.model.predict(df))
    pd.testing.assert_frame_equal(loaded.predict_proba(df), cancer_result.model.predict_proba(df))
    frame = forgeml.predict("cancer@latest", df.head(7), proba=True)
    assert list(frame.columns) == ["prediction", *[f"proba_{c}" for c in loaded.classes]]
    assert len(frame) == 7


def test_evaluate_on_labelled_rows(cancer_result):
    df = forgeml.pipeline._read("sklearn://breast_cancer", cancer_result.spec)[0]
    out = forgeml.evaluate("cancer@latest", df)
    assert out["rows"] == len(df)
    assert out["metrics"]["accuracy"] > 0.9
    assert out["confusion_matrix"]["labels"] == cancer_result.model.classes
    with pytest.raises(DataError, match="evaluation data has no 'target' column"):
        forgeml.evaluate("cancer@latest", df.drop(columns=["target"]))


def test_messy_table_end_to_end():
    data = make_churn(500, seed=1)
    result = forgeml.train(data, target="churn", time_limit=40, name="churn", models="lightgbm,linear")
    kinds = {c.name: c.kind for c in result.model.schema.columns}
    assert "customer_id" not in kinds  # identifiers never become features
    assert kinds["signup_date"] == "datetime" and kinds["notes"] == "text" and kinds["premium"] == "boolean"
    assert result.metrics["roc_auc"] > 0.6
    new = make_churn(40, seed=9).drop(columns=["churn"])
    new.loc[0, "plan"] = "platinum"  # unseen category
    new.loc[1, "city"] = None
    preds = forgeml.predict("churn@latest", new, proba=True)
    assert preds["prediction"].isin(["yes", "no"]).all()
    np.testing.assert_allclose(preds[["proba_no", "proba_yes"]].sum(axis=1), 1.0)
    broken = new.copy()
    broken["tenure_months"] = "many"
    with pytest.raises(SchemaError, match="tenure_months"):
        forgeml.predict("churn@latest", broken)
    with pytest.raises(SchemaError, match="monthly_fee"):
        forgeml.predict("churn@latest", new.drop(columns=["monthly_fee"]))


def test_regression_on_a_generated_table():
    result = forgeml.train(make_prices(400), target="price", time_limit=30, register=False, models="lightgbm,linear")
    assert result.model.task == "regression" and result.metric == "rmse"
    assert result.metrics["r2"] > 0.8
    assert result.version is None and result.report_path.is_file()


def test_same_seed_same_split_same_model_same_numbers():
    runs = [forgeml.train("sklearn://wine", target="target", models="random_forest,linear", time_limit=None,
                          register=False, seed=7, report=False) for _ in range(2)]
    assert runs[0].evaluation == runs[1].evaluation
    pd.testing.assert_frame_equal(runs[0].leaderboard.drop(columns="fit_time"), runs[1].leaderboard.drop(columns="fit_time"))


def _store_is_empty() -> bool:
    from mlflow.entities import ViewType

    store = Store()
    client = store._client if hasattr(store, "_client") else None
    if store.list_models():
        return False
    if client is None:
        return True
    experiments = client.search_experiments(view_type=ViewType.ALL)
    runs = client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ACTIVE_ONLY) if experiments else []
    return len(runs) == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target": "Target"}, DataError, "did you mean 'target'"),
        ({"target": "target", "models": "lightgbn"}, SpecError, "did you mean 'lightgbm'"),
        ({"target": "target", "metric": "rmse"}, SpecError, "rmse"),
        ({"target": "target", "ignore_columns": ["nope"]}, DataError, "ignored column 'nope' not found"),
    ],
)
def test_bad_input_leaves_nothing_in_the_registry(fresh_home, kwargs, error, message):
    with pytest.raises(error, match=message):
        forgeml.train("sklearn://iris", name="bad", time_limit=10, **kwargs)
    assert _store_is_empty()


def test_failure_after_the_run_started_deletes_the_run(fresh_home, monkeypatch):
    import forgeml.registry.package as package

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(package, "save_package", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        forgeml.train("sklearn://iris", target="target", models="linear", time_limit=10, name="half")
    assert _store_is_empty()
