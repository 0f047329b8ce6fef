"""Interrupted training jobs and `--resume`: the resumed run ends with exactly the uninterrupted run's model."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

import forgeml
from forgeml.errors import DataError, Interrupted, SpecError
from forgeml.jobs import Job, checkpoint_slot, current_slot, jobs_root
from forgeml.spec import build_spec

pytest.importorskip("torch")

MLP = dict(target="target", models=[{"family": "mlp", "params": {"hidden_sizes": [16], "early_stopping": None}}],
           epochs=6, batch_size=32, seed=3)


@pytest.fixture
def cancer() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    return frame.sample(n=300, random_state=0).reset_index(drop=True)


def _interrupt_at_epoch(epoch: int, fits_to_skip: int = 0):
    """An on_event sink that sends this process SIGINT after `epoch` of the (fits_to_skip + 1)-th neural fit."""
    seen = {"fits": 0, "sent": False}

    def sink(event: str, payload: dict) -> None:
        if event == "end":
            seen["fits"] += 1
        if event == "epoch" and payload["epoch"] == epoch and seen["fits"] == fits_to_skip and not seen["sent"]:
            seen["sent"] = True
            signal.raise_signal(signal.SIGINT)  # the trainer finishes the epoch's bookkeeping, checkpoints, stops

    return sink


def _weights(result) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in result.model.estimator.module_.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("validation", ["holdout", "cv"])
def test_interrupted_and_resumed_run_ends_with_the_uninterrupted_weights(fresh_home, cancer, validation):
    options = dict(MLP, validation=validation)
    reference = forgeml.train(cancer, register=False, **options)
    with pytest.raises(Interrupted, match=r"resume with: forgeml train --resume [0-9a-f]{12}") as info:
        # cv: fold 1 completes, fold 2 is interrupted; holdout: the one fit (networks are not refitted after it)
        skip = 1 if validation == "cv" else 0
        forgeml.train(cancer, register=False, on_event=_interrupt_at_epoch(3, fits_to_skip=skip), **options)
    job_id = re.search(r"--resume ([0-9a-f]{12})", str(info.value)).group(1)
    folder = jobs_root() / job_id
    assert (folder / "job.json").is_file()
    assert [p.name for p in folder.iterdir() if p.is_dir()] == [f"mlp-{'fold2' if validation == 'cv' else 'holdout'}"]

    resumed = forgeml.train(cancer, register=False, resume=job_id)
    assert not folder.exists()  # a finished job leaves nothing behind
    ours, theirs = _weights(resumed), _weights(reference)
    assert ours.keys() == theirs.keys()
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    assert resumed.metrics == reference.metrics
    assert resumed.leaderboard[resumed.metric].tolist() == reference.leaderboard[reference.metric].tolist()


def test_a_finished_or_failed_run_leaves_no_job(fresh_home, cancer):
    forgeml.train(cancer, target="target", models="linear", register=False, time_limit=20)
    with pytest.raises(DataError, match="not found"):
        forgeml.train(cancer, target="nope", register=False)
    assert not jobs_root().exists() or not any(jobs_root().iterdir())


def test_resume_refuses_an_unknown_job_other_options_and_changed_data(fresh_home, cancer):
    with pytest.raises(DataError, match="no interrupted training job 'abc'.*there are no interrupted jobs"):
        forgeml.train(resume="abc")
    job = Job.create(build_spec(target="target").model_dump(mode="json"), None,
                     {"hash": "0" * 64, "rows": 3})
    with pytest.raises(SpecError, match="runs with its own spec; leave out epochs"):
        forgeml.train(cancer, resume=job.id, epochs=3)
    with pytest.raises(DataError, match="started on a DataFrame; pass the same DataFrame"):
        forgeml.train(resume=job.id)
    with pytest.raises(DataError, match="the data differs from the data job"):
        forgeml.train(cancer, resume=job.id)
    assert (job.path / "job.json").is_file()  # refusing a resume keeps the job for a correct one


def test_checkpoint_slots_exist_only_inside_a_job(fresh_home):
    with checkpoint_slot("mlp-fold1") as slot:
        assert slot is None and current_slot() is None
    job = Job.create({}, None, {"hash": "x"})
    with job.active(), checkpoint_slot("mlp fold/1") as slot:
        assert slot == job.path / "mlp_fold_1" and current_slot() == slot
    assert current_slot() is None
    job.finish()
    assert not job.path.exists()


@pytest.mark.slow
def test_cli_interrupt_then_resume_registers_the_model(fresh_home, cancer, tmp_path):
    data = tmp_path / "cancer.csv"
    cancer.to_csv(data, index=False)
    env = {**os.environ, "FORGEML_HOME": str(fresh_home), "FORGEML_TORCH_THREADS": "1"}
    cmd = [sys.executable, "-m", "forgeml.cli", "train", str(data), "--target", "target", "--models", "mlp",
           "--epochs", "400", "--name", "resumed", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((fresh_home / "jobs").glob("*/job.json")) and proc.poll() is None:
        time.sleep(0.05)  # the job exists once the data is read; a little later the mlp is training
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    job_id = re.search(r"forgeml train --resume ([0-9a-f]{12})", err).group(1)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1

    done = subprocess.run([sys.executable, "-m", "forgeml.cli", "train", "--resume", job_id, "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"name": "resumed"' in done.stdout and '"version": 1' in done.stdout
    assert not (fresh_home / "jobs" / job_id).exists()
