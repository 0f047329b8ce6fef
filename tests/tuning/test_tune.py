"""forgeml.tune and `forgeml tune`: search, refit, register, child runs, resumed studies, workers, PostgreSQL."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

import forgeml
from forgeml.cli import main
from forgeml.errors import SpecError, TrainingError
from forgeml.spec import OVERRIDES

SPEC = {  # small and quick: 3 folds, 300 trees at most, a narrow learning-rate range
    "data": {"source": "sklearn://breast_cancer", "target": "target"},
    "split": {"folds": 3},
    "models": [{"family": "lightgbm", "params": {"n_estimators": 300}}],
    "training": {"time_limit": 300},
    "tuning": {"spaces": {"lightgbm": {"learning_rate": {"low": 0.03, "high": 0.3, "log": True}}}},
}


def _store():
    from forgeml.registry.store import Store

    return Store()


def _runs(store, study: str):
    return store.client.search_runs([store.experiment_id], filter_string=f"tags.`forgeml.study` = '{study}'",
                                    max_results=500)


def _study(name: str, url: str | None = None):
    from forgeml.tuning.search import open_storage, open_study

    return open_study(name, direction="maximize", storage=open_storage(url))


# ----------------------------------------------------------------------------- the API


@pytest.mark.slow
def test_tuned_lightgbm_matches_or_beats_its_defaults_registers_and_logs_child_runs(fresh_home):
    default = forgeml.train(spec=SPEC, register=False, report=False)
    default_cv = float(default.leaderboard.iloc[0]["roc_auc"])  # out-of-fold over the same 3 folds

    result = forgeml.tune(spec=SPEC, trials=6, name="cancer", sampler="tpe", pruner="median")
    board = result.leaderboard
    assert result.study == "cancer-lightgbm" and result.trials_run == 6 and len(board) == 6
    best_cv = float(board.iloc[0]["roc_auc"])
    assert best_cv >= default_cv - 1e-3  # trial 0 is the default configuration
    assert board.iloc[0]["trial"] == result.best_trial and result.model.family == "lightgbm"
    assert result.evaluation["validation"]["metrics"]["roc_auc"] == pytest.approx(best_cv, abs=1e-9)  # refit scored again
    assert result.metrics["roc_auc"] > 0.95 and result.version == 1
    assert result.model.params["learning_rate"] == result.best_params["learning_rate"]

    store = _store()
    loaded = forgeml.load("cancer@latest")
    assert loaded.metadata["study"] == "cancer-lightgbm" and loaded.metadata["trial"] == result.best_trial
    runs = _runs(store, "cancer-lightgbm")
    study_run = [r for r in runs if "forgeml.trial" not in r.data.tags and r.info.run_name.startswith("study")]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(study_run) == 1 and study_run[0].info.status == "FINISHED"
    assert len(trials) == 6 and {r.data.tags["mlflow.parentRunId"] for r in trials} == {study_run[0].info.run_id}
    complete = [r for r in trials if r.data.tags["forgeml.trial_state"] == "complete"]
    assert complete and all("roc_auc" in r.data.metrics and "learning_rate" in r.data.params for r in complete)
    registered = store.get_run(result.run_id)
    assert registered["tags"]["forgeml.study"] == "cancer-lightgbm"
    assert registered["tags"]["forgeml.study_run_id"] == study_run[0].info.run_id

    # the same command again: the study already holds 6 trials, so it only refits and registers
    again = forgeml.tune(spec=SPEC, trials=6, name="cancer")
    assert again.trials_run == 0 and again.best_trial == result.best_trial and again.version == 2


def test_failed_trials_are_logged_as_failed_and_a_study_without_a_result_registers_nothing(fresh_home):
    spec = {"data": {"source": "sklearn://iris", "target": "target"}, "split": {"folds": 3},
            "models": [{"family": "decision_tree", "params": {"min_samples_leaf": 2, "ccp_alpha": 0.0}}],
            "tuning": {"sampler": "grid", "spaces": {"decision_tree": {"max_depth": [2, 3],
                                                                         "class_weight": [{"x": 1}]}}}}
    with pytest.raises(TrainingError, match=r"no trial of study 'iris-decision_tree' finished \(ValueError: .*class_weight"):
        forgeml.tune(spec=spec, name="iris", trials=5)
    store = _store()
    assert store.list_models() == []
    trials = [r for r in _runs(store, "iris-decision_tree") if r.data.tags.get("mlflow.parentRunId")]
    assert len(trials) == 2 and {r.info.status for r in trials} == {"FAILED"}
    assert all("class_weight" in r.data.tags["forgeml.error"] for r in trials)


def test_register_false_tracks_nothing_and_workers_means_tuning_processes(fresh_home):
    spec = {"data": {"source": "sklearn://iris", "target": "target"}, "split": {"folds": 3},
            "models": ["decision_tree"]}
    result = forgeml.tune(spec=spec, trials=3, register=False, report=False, name="quiet", sampler="random", workers=1)
    assert result.version is None and result.spec.tuning.workers == 1 and result.spec.neural.workers == 1
    assert len(result.leaderboard) == 3 and result.metrics["log_loss"] >= 0
    assert _runs(_store(), "quiet-decision_tree") == []


def test_a_study_refuses_trials_of_another_setup(fresh_home):
    spec = {"data": {"source": "sklearn://iris", "target": "target"}, "split": {"folds": 3}, "models": ["decision_tree"]}
    forgeml.tune(spec=spec, trials=2, register=False, report=False, name="setup")
    with pytest.raises(SpecError, match="study 'setup-decision_tree' holds trials of another setup .*split"):
        forgeml.tune(spec={**spec, "split": {"folds": 4}}, trials=2, register=False, report=False, name="setup")
    other = forgeml.tune(spec={**spec, "split": {"folds": 4}}, trials=2, register=False, report=False, name="setup",
                         study="setup-4-folds")
    assert other.study == "setup-4-folds"


def test_a_family_without_a_search_space(fresh_home, monkeypatch):
    from forgeml.models import zoo

    bare = zoo.Family("bare_tree", ("classification",), zoo.get_family("decision_tree").build)
    monkeypatch.setitem(zoo._FAMILIES, "bare_tree", bare)
    with pytest.raises(SpecError, match="model family 'bare_tree' has no search space for classification; give one in tuning.spaces.bare_tree"):
        forgeml.tune("sklearn://iris", target="target", models="bare_tree", register=False)


# ----------------------------------------------------------------------------- the CLI


def test_every_tune_option_maps_onto_the_spec():
    import inspect

    from forgeml.cli import tune

    params = set(inspect.signature(tune).parameters)
    cli_only = {"data", "spec", "as_json", "quiet", "join"}
    assert params - cli_only <= set(OVERRIDES) | {"seed", "models"}


def test_cli_tune_prints_json_and_registers(fresh_home, capsys):
    argv = ["tune", "sklearn://iris", "--target", "target", "--model", "decision_tree", "--trials", "3",
            "--sampler", "random", "--pruner", "none", "--name", "iris-cli", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "iris-cli" and out["version"] == 1 and out["study"] == "iris-cli-decision_tree"
    assert out["trials"] == {"ok": 3, "pruned": 0, "failed": 0} and len(out["leaderboard"]) == 3
    assert set(out["best_params"]) <= {"max_depth", "min_samples_leaf", "ccp_alpha"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "lightgbm", "--sampler", "bayes"], "tuning.sampler: Input should be 'tpe', 'random' or 'grid' (got 'bayes')"),
        (["--model", "lightgbm", "--pruner", "asha"], "tuning.pruner: Input should be 'median', 'hyperband' or 'none'"),
        (["--model", "lightgbm", "--trials", "0"], "tuning.trials: Input should be greater than or equal to 1"),
        ([], "tune searches one model family; choose it with --model"),
        (["--model", "lightgbm,linear"], "tune searches one model family"),
    ],
)
def test_cli_user_errors_are_one_line(argv, message, capsys, fresh_home):
    assert main(["tune", "sklearn://iris", "--target", "target", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"num_leafs": {"low": 4, "high": 64}}, "unknown hyperparameter 'num_leafs' for 'lightgbm'; did you mean 'num_leaves'?"),
        ({"num_leaves": {"low": 64, "high": 4}}, "'num_leaves': low (64) is greater than high (4); swap them"),
    ],
)
def test_cli_bad_search_spaces_in_the_spec(space, message, tmp_path, capsys, fresh_home):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"tuning": {"spaces": {"lightgbm": space}}}))
    assert main(["tune", "sklearn://iris", "--target", "target", "--model", "lightgbm", "--spec", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- workers and resumed studies


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "forgeml.cli", "tune", *args]


def _finished(name: str, url: str | None = None) -> int:
    from forgeml.tuning.search import finished

    try:
        return finished(_study(name, url))
    except Exception:  # noqa: BLE001 - not created yet
        return 0


@pytest.mark.slow
def test_a_study_survives_a_killed_worker_and_completes_its_trials(fresh_home, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "tuning": {**SPEC["tuning"], "sampler": "random", "pruner": "none"}}))
    env = {**os.environ, "FORGEML_HOME": str(fresh_home), "FORGEML_TORCH_THREADS": "1"}
    worker = subprocess.Popen(_cli("--spec", str(spec), "--trials", "10", "--name", "resume", "--join", "--quiet"),
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _finished("resume-lightgbm") < 3 and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.poll() is None, worker.stderr.read()
    worker.send_signal(signal.SIGKILL)  # mid-study: no clean-up of any kind
    worker.wait(timeout=30)
    before = _finished("resume-lightgbm")
    assert 3 <= before < 10

    result = forgeml.tune(spec=str(spec), trials=10, name="resume")
    study = _study("resume-lightgbm")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 10  # the requested count, over both runs
    assert result.trials_run == 10 - before and result.version == 1
    assert states.count("RUNNING") <= 1  # the trial the kill interrupted, failed later by its missing heartbeat
    pids = {t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs}
    assert len(pids) == 2  # the killed worker's trials are kept and counted


@pytest.mark.slow
def test_workers_share_one_study_on_this_machine(fresh_home):
    result = forgeml.tune(spec=SPEC, trials=8, name="pair", workers=2, sampler="random")
    study = _study("pair-lightgbm")
    assert len({t.user_attrs.get("worker") for t in study.trials}) == 2
    assert 8 <= len(study.trials) <= 9  # each worker finishes the trial it is running when the count is reached
    children = [r for r in _runs(_store(), "pair-lightgbm") if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == len(study.trials) and result.version == 1


# ----------------------------------------------------------------------------- PostgreSQL


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on a free loopback port, with a database `forgeml`.

    PostgreSQL refuses to run as root; when the tests run as root, initdb and the server run as the
    unprivileged user `nobody` (subprocess's user/group switch) in a temporary folder it owns.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (no initdb / pg_ctl on PATH or in /usr/lib/postgresql/*/bin)")
    psycopg = pytest.importorskip("psycopg")
    root = Path(tempfile.mkdtemp(prefix="forgeml-pg-"))
    as_user: dict = {}
    if os.geteuid() == 0:
        import pwd

        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": [],
                   "env": {**os.environ, "HOME": str(root)}}
    data, port = root / "data", _free_port()
    subprocess.run([initdb, "-D", str(data), "-U", "forgeml", "--auth=trust", "-E", "UTF8"], check=True,
                   capture_output=True, cwd=root, **as_user)
    subprocess.run([pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60",
                    "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True, cwd=root, **as_user)
    try:
        with psycopg.connect(f"postgresql://forgeml@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE forgeml")
        yield f"postgresql+psycopg://forgeml@127.0.0.1:{port}/forgeml"
    finally:
        subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], check=False, capture_output=True, cwd=root,
                       **as_user)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_workers_on_postgresql_share_one_study_and_one_registry(postgres, tmp_path, monkeypatch):
    import psycopg

    env = {**os.environ, "FORGEML_TRACKING_URI": postgres, "FORGEML_HOME": str(tmp_path / "home"),
           "FORGEML_TORCH_THREADS": "1"}
    env.pop("FORGEML_STUDY_URI", None)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "tuning": {**SPEC["tuning"], "sampler": "random"}}))
    args = ("--spec", str(spec), "--trials", "12", "--name", "pg", "--json", "--quiet")
    main_run = subprocess.Popen(_cli(*args, "--workers", "2"), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    while _finished_pg("pg-lightgbm", postgres) < 1 and main_run.poll() is None:
        time.sleep(0.2)
    joined = subprocess.run(_cli(*args, "--join"), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            check=False)
    out, err = main_run.communicate(timeout=300)
    assert main_run.returncode == 0, err
    assert joined.returncode == 0, joined.stderr
    summary = json.loads(out)
    assert summary["version"] == 1 and summary["storage"].startswith("postgresql+psycopg://forgeml@127.0.0.1")

    monkeypatch.setenv("FORGEML_TRACKING_URI", postgres)
    from forgeml.tuning.search import finished, study_storage_url

    study = _study("pg-lightgbm", study_storage_url())
    assert 12 <= finished(study) <= 14  # at most one extra trial per worker that was busy at the end
    workers = {t.user_attrs.get("worker") for t in study.trials}
    assert len(workers) >= 2
    store = _store()
    assert store.list_models()[0]["name"] == "pg"
    children = [r for r in _runs(store, "pg-lightgbm") if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == len(study.trials)
    with psycopg.connect(postgres.replace("+psycopg", "")) as conn:
        where = dict(conn.execute("SELECT table_name, string_agg(table_schema, ',' ORDER BY table_schema) FROM "
                                  "information_schema.tables WHERE table_name IN ('alembic_version', 'trials', "
                                  "'registered_models') GROUP BY table_name").fetchall())
    assert where == {"alembic_version": "forgeml_studies,public", "trials": "forgeml_studies",
                     "registered_models": "public"}


def _finished_pg(name: str, url: str) -> int:
    from sqlalchemy.engine import make_url

    from forgeml.tuning.search import STUDY_SCHEMA

    study_url = make_url(url).update_query_dict({"options": f"-csearch_path={STUDY_SCHEMA}"})
    return _finished(name, study_url.render_as_string(hide_password=False))
