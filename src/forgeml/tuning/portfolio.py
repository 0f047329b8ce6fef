"""What `models: auto` tries, by preset: the zoo's families at their defaults plus strong variants,
ordered cheapest-and-strongest first, and how much of the budget goes to tuning and ensembling.

    fast      a handful of cheap families, scored on the validation split; no tuning, no ensemble
    balanced  every family at its defaults plus one wide LightGBM; k-fold CV on small data; a TPE search
              of the leader in 30 % of the time left; an ensemble when it beats the best single model
    best      balanced plus more variants (extremely randomised LightGBM, deep CatBoost, shallow XGBoost),
              half the time left for tuning

Variants follow what zero-shot portfolios of gradient-boosted trees teach: diversity of strong default
configurations beats long searches at small budgets, and a greedy ensemble over them captures most of
the gain. Data with an image or sequence column tries its network first (see zoo.auto_families).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml.models.zoo import Family, auto_families, get_family

PRESETS = ("fast", "balanced", "best")


@dataclass(frozen=True)
class Preset:
    families: tuple[str, ...] | None  # None: every auto family
    variants: tuple[str, ...]  # "family:config" entries of VARIANTS
    tune_share: float  # share of the time left after the portfolio spent tuning the leader
    ensemble: bool
    cv: bool  # k-fold CV on small data (else the validation split)


PRESET_SETTINGS = {
    "fast": Preset(("lightgbm", "linear", "xgboost", "hist_gradient_boosting", "extra_trees", "naive_bayes"), (),
                   0.0, False, False),
    "balanced": Preset(None, ("lightgbm:wide",), 0.3, True, True),
    "best": Preset(None, ("lightgbm:wide", "lightgbm:extra", "catboost:deep", "xgboost:shallow"), 0.5, True, True),
}

# (config name, params, priority): the priority places the variant among the zoo's families.
VARIANTS: dict[str, tuple[dict[str, Any], int]] = {
    "lightgbm:wide": ({"num_leaves": 128, "learning_rate": 0.03, "min_child_samples": 5, "colsample_bytree": 0.6}, 19),
    "lightgbm:extra": ({"extra_trees": True, "num_leaves": 63, "colsample_bytree": 0.6}, 32),
    "catboost:deep": ({"depth": 8, "l2_leaf_reg": 6.0, "learning_rate": 0.06}, 33),
    "xgboost:shallow": ({"max_depth": 3, "learning_rate": 0.08, "min_child_weight": 3.0}, 34),
}


ORDER = {"lightgbm": 10, "linear": 11, "knn": 11.5, "catboost": 12, "svm": 18.5}


def portfolio(task: str, kinds: dict[str, str] | None, preset: str) -> list[tuple[Family, dict[str, Any], str]]:
    """(family, params, config) in the order AutoML tries them for `preset`."""
    settings = PRESET_SETTINGS[preset]
    families = auto_families(task, kinds)
    networks_first = [f for f in families if not f.auto]  # cnn / rnn for image / sequence data
    chosen = [f for f in families if f.auto and (settings.families is None or f.name in settings.families)]
    # Cheapest and strongest first: LightGBM, then the nearly free linear model and k-NN (diverse ensemble
    # members in a fraction of a second on small data; k-NN's size guard keeps it off large tables), then
    # CatBoost and XGBoost, and the kernel SVM (guarded at 10,000 rows) before the other trees.
    entries = [(ORDER.get(f.name, f.priority), f, {}, "default") for f in chosen]
    for key in settings.variants:
        name, config = key.split(":")
        family = get_family(name)
        if task in family.tasks and any(f.name == name for f in chosen):
            params, priority = VARIANTS[key]
            entries.append((priority, family, dict(params), config))
    entries.sort(key=lambda e: e[0])
    return [(f, {}, "default") for f in networks_first] + [(f, p, c) for _, f, p, c in entries]
