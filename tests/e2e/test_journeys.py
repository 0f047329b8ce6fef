"""The README's journeys, each command in a fresh `forgeml` process, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tables import make_churn

pytestmark = pytest.mark.slow

FORGEML = [sys.executable, "-m", "forgeml.cli"]


def forgeml(*args: str, env: dict, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*FORGEML, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    if ok:
        assert proc.returncode == 0, f"forgeml {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey")
    env = {**os.environ, "FORGEML_HOME": str(root / "home"), "COLUMNS": "200"}
    env.pop("FORGEML_TRACKING_URI", None)
    data = make_churn(700, seed=3)
    data.iloc[:500].to_csv(root / "data.csv", index=False)
    data.iloc[500:600].drop(columns=["churn"]).to_csv(root / "new.csv", index=False)
    data.iloc[600:].to_csv(root / "holdout.csv", index=False)
    return root, env


def test_train_predict_evaluate_profile_models(workspace):
    root, env = workspace
    trained = forgeml("train", "data.csv", "--target", "churn", "--time-limit", "40", "--name", "churn", env=env, cwd=root)
    assert "Leaderboard" in trained.stdout and "Registered churn/1" in trained.stdout
    report = Path(trained.stdout.split("Report: ")[1].split()[0])
    assert report.is_file()

    forgeml("predict", "churn@latest", "new.csv", "--output", "preds.csv", "--proba", env=env, cwd=root)
    preds = pd.read_csv(root / "preds.csv")
    assert list(preds.columns) == ["prediction", "proba_no", "proba_yes"] and len(preds) == 100

    # the same predictions from the Python API in this process and from a fresh CLI process
    os.environ["FORGEML_HOME"] = env["FORGEML_HOME"]
    import forgeml as api

    in_process = api.predict("churn/1", root / "new.csv", proba=True)
    pd.testing.assert_series_equal(in_process["prediction"].reset_index(drop=True), preds["prediction"],
                                   check_dtype=False)
    pd.testing.assert_series_equal(in_process["proba_yes"].reset_index(drop=True), preds["proba_yes"],
                                   check_exact=False, rtol=1e-12)

    evaluated = json.loads(forgeml("evaluate", "churn@latest", "holdout.csv", "--json", env=env, cwd=root).stdout)
    assert evaluated["rows"] == 100 and 0.5 < evaluated["metrics"]["roc_auc"] <= 1.0

    profiled = json.loads(forgeml("profile", "data.csv", "--target", "churn", "--json", env=env, cwd=root).stdout)
    assert profiled["kinds"]["customer_id"] == "identifier" and profiled["rows"] == 500

    forgeml("models", "alias", "churn", "1", "production", env=env, cwd=root)
    listed = json.loads(forgeml("models", "list", "--json", env=env, cwd=root).stdout)
    assert listed[0]["name"] == "churn" and listed[0]["aliases"] == {"production": 1}
    shown = json.loads(forgeml("models", "show", "churn", "--json", env=env, cwd=root).stdout)
    assert shown[0]["data_hash"] and shown[0]["family"] and shown[0]["aliases"] == ["production"]
    forgeml("predict", "churn@production", "new.csv", "--output", "preds.parquet", env=env, cwd=root)
    assert len(pd.read_parquet(root / "preds.parquet")) == 100


def test_init_then_train_from_the_spec(workspace):
    root, env = workspace
    spec = forgeml("init", env=env, cwd=root).stdout
    spec = spec.replace("source: null", "source: data.csv").replace("target: null", "target: churn")
    spec = spec.replace("time_limit: 60", "time_limit: 20").replace("name: model", "name: churn-spec")
    spec = spec.replace("models: auto", "models: [linear, lightgbm]")
    (root / "spec.yaml").write_text(spec)
    out = json.loads(forgeml("train", "--spec", "spec.yaml", "--json", env=env, cwd=root).stdout)
    assert out["name"] == "churn-spec" and out["version"] == 1
    assert {row["family"] for row in out["leaderboard"]} - {"ensemble"} == {"linear", "lightgbm"}


def test_registered_model_is_an_mlflow_pyfunc_in_a_fresh_process(workspace):
    root, env = workspace
    home = Path(env["FORGEML_HOME"])
    code = (
        "import mlflow, pandas as pd;"
        f"mlflow.set_tracking_uri('sqlite:///{home}/mlflow.db'); mlflow.set_registry_uri('sqlite:///{home}/mlflow.db');"
        "m = mlflow.pyfunc.load_model('models:/churn/1');"
        "print(m.predict(pd.read_csv('new.csv')).to_json(orient='records'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    preds = pd.read_csv(root / "preds.csv")
    assert [r["prediction"] for r in rows] == preds["prediction"].tolist()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "ghost.csv", "--target", "churn"), "data file 'ghost.csv' not found"),
        (("train", "data.csv", "--target", "Churn"), "did you mean 'churn'"),
        (("train", "data.csv", "--target", "churn", "--time-limit", "-1"), "training.time_limit"),
        (("predict", "nobody@latest", "new.csv"), "nobody"),
        (("predict", "churn@staging", "new.csv"), "staging"),
        (("evaluate", "churn/1", "new.csv"), "no 'churn' column"),
    ],
)
def test_bad_input_one_line_exit_2_and_registry_untouched(workspace, args, message):
    root, env = workspace
    before = json.loads(forgeml("models", "list", "--json", env=env, cwd=root).stdout)
    proc = forgeml(*args, env=env, cwd=root, ok=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert json.loads(forgeml("models", "list", "--json", env=env, cwd=root).stdout) == before


def test_ragged_csv(workspace):
    root, env = workspace
    (root / "ragged.csv").write_text("a,b,y\n1,2,x\n3,4,5,6\n")
    proc = forgeml("train", "ragged.csv", "--target", "y", env=env, cwd=root, ok=False)
    assert proc.returncode == 2 and "line 3" in proc.stderr and "Traceback" not in proc.stderr


def test_help_answers_quickly(workspace):
    root, env = workspace
    proc = forgeml("--help", env=env, cwd=root)
    assert "train" in proc.stdout and "predict" in proc.stdout
