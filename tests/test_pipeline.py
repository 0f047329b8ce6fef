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
    assert set(r.leaderboard["family"]) == {"linear", "lightgbm", "ensemble"}  # an ensemble is always considered
    ensemble = r.leaderboard[r.leaderboard["family"] == "ensemble"].iloc[0]
    assert ensemble["status"] in {"ok", "skipped"} and ensemble["config"] in {"greedy", "stacked"}
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
    timings = ["fit_time", "predict_time_per_row"]
    pd.testing.assert_frame_equal(runs[0].leaderboard.drop(columns=timings), runs[1].leaderboard.drop(columns=timings))


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


# ----------------------------------------------------------------------------- images, texts, sequences


@pytest.mark.slow
def test_an_image_folder_trains_a_cnn_that_predicts_from_paths_in_a_fresh_process(fresh_home, tmp_path):
    pytest.importorskip("torch")
    import subprocess
    import sys

    from tables import make_digit_folder

    root = make_digit_folder(tmp_path / "digits", classes=(0, 1, 2, 3))
    result = forgeml.train(root, models=[{"family": "cnn", "params": {"channels": [16, 32]}}], epochs=15, time_limit=None,
                           name="digits", seed=0)
    assert result.model.target == "label" and result.model.family == "cnn"
    assert result.metrics["accuracy"] >= 0.95
    assert result.model.schema.kinds == {"image": "image"}
    paths = pd.DataFrame({"image": sorted(str(p) for p in (root / "3").glob("*.png"))[:20]})
    expected = result.model.predict_frame(paths, proba=True)
    assert (expected["prediction"] == "3").mean() >= 0.9
    csv = tmp_path / "new.csv"
    paths.to_csv(csv, index=False)
    code = (f"import forgeml; print(forgeml.predict('digits/1', {str(csv)!r}, proba=True)"
            ".to_json(orient='split'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "FORGEML_HOME": str(fresh_home)}).stdout
    again = pd.read_json(__import__("io").StringIO(out), orient="split", dtype={"prediction": str})
    assert again["prediction"].tolist() == expected["prediction"].tolist()
    np.testing.assert_allclose(again.drop(columns="prediction").to_numpy(),
                               expected.drop(columns="prediction").to_numpy(), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_a_text_column_trains_a_sequence_network_on_raw_text(family):
    pytest.importorskip("torch")
    from tables import make_reviews

    reviews = make_reviews(400)
    result = forgeml.train(reviews, target="sentiment", models=family, epochs=25, time_limit=None, register=False,
                           seed=0)
    assert result.model.estimator.tokenizer == "word" and result.model.estimator.vocabulary_ is not None
    assert result.metrics["accuracy"] >= 0.8
    new = pd.DataFrame({"review": ["it was great and i love it", "arrived broken , awful , refund"]})
    assert result.model.predict(new).tolist() == ["positive", "negative"]


@pytest.mark.slow
def test_a_sequence_column_trains_an_rnn_first_and_tables_read_its_statistics():
    pytest.importorskip("torch")
    from tables import make_trends

    trends = make_trends(300)
    result = forgeml.train(trends, target="direction", time_limit=40, register=False, seed=0)
    board = result.leaderboard
    assert board["family"].iloc[0] in {"rnn", "lightgbm", "catboost", "linear"}
    assert list(board["family"])[:1] == ["rnn"] or "rnn" in set(board[board["status"] == "ok"]["family"])
    assert result.model.schema.kinds["series"] == "sequence"
    assert result.metrics["accuracy"] >= 0.85
    lgbm = forgeml.train(trends, target="direction", models="lightgbm", register=False, seed=0)
    assert lgbm.metrics["accuracy"] >= 0.85  # slope and first/last make the direction plain to a tree model


@pytest.mark.parametrize(
    ("family", "frame", "message"),
    [
        ("cnn", "churn", "a cnn reads exactly one image column"),
        ("rnn", "prices", "rnn and transformer read one text column or sequence columns"),
    ],
)
def test_networks_without_their_kind_of_column_fail_with_one_line(fresh_home, family, frame, message):
    pytest.importorskip("torch")
    data = make_churn(60) if frame == "churn" else make_prices(60)
    target = "churn" if frame == "churn" else "price"
    with pytest.raises(DataError, match=message):
        forgeml.train(data, target=target, models=family, epochs=1, register=False)
    assert _store_is_empty()


def test_an_image_folder_with_one_class_is_refused(tmp_path):
    from tables import make_digit_folder

    with pytest.raises(DataError, match="has one class '7'; a classifier needs at least two"):
        forgeml.train(make_digit_folder(tmp_path / "one", classes=(7,), per_class=3), register=False)


@pytest.mark.slow
def test_a_long_table_of_steps_trains_per_sequence_and_predicts_from_steps(fresh_home):
    pytest.importorskip("torch")
    from tables import make_trends

    trends = make_trends(200)
    long = pd.DataFrame([{"series_id": f"s{i:03d}", "step": t, "value": v, "direction": row.direction}
                         for i, row in enumerate(trends.itertuples()) for t, v in enumerate(row.series)])
    long = long.sample(frac=1.0, random_state=0)  # steps arrive in any order
    result = forgeml.train(long, target="direction", sequence_id="series_id", sequence_time="step", models="rnn",
                           epochs=30, time_limit=None, name="trends", seed=0)
    assert result.model.schema.kinds == {"value": "sequence"} and result.metrics["accuracy"] >= 0.85
    fresh = forgeml.load("trends")
    preds = fresh.predict_frame(long[long["series_id"].isin(["s000", "s001", "s002"])].drop(columns="direction"))
    assert preds["series_id"].tolist() == ["s000", "s001", "s002"]
    assert (preds["prediction"] == trends["direction"].iloc[:3].to_numpy()).mean() >= 2 / 3
    with pytest.raises(SpecError, match="sequence_id and sequence_time go together"):
        forgeml.train(long, target="direction", sequence_id="series_id", register=False)
