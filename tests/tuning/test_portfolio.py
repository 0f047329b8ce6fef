"""What models: auto tries by preset: the portfolio's order, variants and settings."""

from __future__ import annotations

import pytest

import forgeml
from forgeml.errors import SpecError
from forgeml.tuning.portfolio import PRESET_SETTINGS, VARIANTS, portfolio


def _names(entries):
    return [f"{f.name}:{config}" if config != "default" else f.name for f, _, config in entries]


def test_balanced_tries_every_family_and_one_wide_lightgbm_cheap_and_strong_first():
    names = _names(portfolio("classification", {"x": "numeric"}, "balanced"))
    assert names[:5] == ["lightgbm", "linear", "knn", "catboost", "xgboost"]
    assert "lightgbm:wide" in names and names.index("lightgbm:wide") > names.index("xgboost")
    assert "cnn" not in names and "naive_bayes" in names


def test_fast_is_a_few_cheap_families_and_best_adds_variants():
    fast = _names(portfolio("regression", {"x": "numeric"}, "fast"))
    assert set(fast) <= set(PRESET_SETTINGS["fast"].families) and "catboost" not in fast
    best = _names(portfolio("classification", {"x": "numeric"}, "best"))
    assert {"lightgbm:extra", "catboost:deep", "xgboost:shallow"} <= set(best)
    wide = next(p for f, p, c in portfolio("classification", None, "best") if c == "wide")
    assert wide == VARIANTS["lightgbm:wide"][0]


def test_images_put_the_cnn_first_in_every_preset():
    for preset in ("fast", "balanced", "best"):
        assert _names(portfolio("classification", {"image": "image"}, preset))[0] == "cnn"


def test_a_fast_preset_run_uses_the_validation_split_and_no_ensemble(fresh_home):
    result = forgeml.train("sklearn://wine", target="target", preset="fast", time_limit=30, register=False,
                           report=False)
    assert "ensemble" not in set(result.leaderboard["family"])
    assert result.evaluation["validation"].get("note") is None  # scored on the validation split, not out-of-fold
    with pytest.raises(SpecError, match="preset"):
        forgeml.train("sklearn://wine", target="target", preset="fastest", register=False)
