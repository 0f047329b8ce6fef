"""Decision thresholds: the cut that serves a label metric best on held-out probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import forgeml
from forgeml.evaluation.metrics import get_metric
from forgeml.tuning.threshold import label_at, tune_threshold


def test_a_miscalibrated_model_gets_the_cut_that_serves_f1():
    rng = np.random.default_rng(0)
    y = np.where(rng.random(2000) < 0.1, "yes", "no")  # 10 % positives
    p = np.clip(np.where(y == "yes", 0.35, 0.15) + rng.normal(0, 0.08, len(y)), 0, 1)  # never above 0.5 much
    cut, score, base = tune_threshold(p, y, get_metric("f1"), ["no", "yes"])
    assert 0.2 < cut < 0.35 and score > base + 0.3
    assert (label_at(p, cut, ["no", "yes"]) == "yes").mean() == pytest.approx(0.1, abs=0.05)


def test_a_flat_metric_keeps_one_half():
    y = np.array(["a", "b"] * 50)
    p = np.where(y == "b", 0.9, 0.1)  # any cut in (0.1, 0.9] is perfect: 0.5 stays
    assert tune_threshold(p, y, get_metric("accuracy"), ["a", "b"]) == (0.5, 1.0, 1.0)


@pytest.mark.slow
def test_training_for_f1_on_imbalanced_data_tunes_and_keeps_the_threshold(fresh_home):
    rng = np.random.default_rng(1)
    n = 1500
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "noise": rng.normal(size=n)})
    y = np.where(X["a"] + 0.5 * X["b"] + rng.normal(0, 1.2, n) > 2.0, "fraud", "ok")
    result = forgeml.train(X.assign(label=y), target="label", metric="f1", models="linear", name="fraud", seed=0)
    model = result.model
    assert model.classes == ["fraud", "ok"]  # the cut applies to the second class, as f1's positive label
    assert model.threshold is not None and model.threshold != 0.5
    assert any("decision threshold" in w for w in result.warnings)
    proba = model.predict_proba(X)["ok"].to_numpy()
    expected = np.where(proba >= model.threshold, "ok", "fraud")
    assert (model.predict(X) == expected).all()
    loaded = forgeml.load("fraud")
    assert loaded.threshold == model.threshold
    assert (loaded.predict_frame(X, proba=True)["prediction"].to_numpy() == expected).all()
