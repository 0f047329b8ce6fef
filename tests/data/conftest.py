"""Shared fixtures for the data-layer tests: bundled datasets and a generated messy table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forgeml.data.io import read_table

WORDS = [
    "shipping", "arrived", "broken", "excellent", "quality", "terrible", "support", "refund", "quickly",
    "package", "product", "recommend", "disappointed", "wonderful", "battery", "screen", "price", "value",
    "service", "delivery", "customer", "happy", "again", "never", "always", "works", "stopped", "perfect",
    "cheap", "sturdy", "flimsy", "colour", "size", "fits", "returned", "replacement", "manual", "setup",
]


@pytest.fixture(scope="session")
def iris() -> pd.DataFrame:
    return read_table("sklearn://iris")


@pytest.fixture(scope="session")
def diabetes() -> pd.DataFrame:
    return read_table("sklearn://diabetes")


def make_messy(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A table with every kind of column and the usual problems: gaps, rare levels, ids, dates, text, mixed types."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "row_id": np.arange(1, n + 1),
            "customer_id": [f"C{i:06d}" for i in rng.permutation(n)],
            "age": rng.integers(18, 90, n).astype(float),
            "income": rng.lognormal(10, 1, n),
            "plan": rng.choice(["basic", "plus", "pro", "enterprise"], n, p=[0.5, 0.3, 0.18, 0.02]),
            "city": rng.choice([f"city_{i}" for i in range(40)], n),
            "active": rng.choice(["yes", "no"], n),
            "signup": pd.Series(pd.date_range("2019-01-01", periods=n, freq="D").strftime("%Y-%m-%d")).to_numpy()[
                rng.permutation(n)
            ],
            "review": [" ".join(rng.choice(WORDS, 10)) for _ in range(n)],
            "score_text": [f"{x:.3f}" for x in rng.normal(size=n)],
            "mixed": [1, "a", 2.5, "b"] * (n // 4),
        }
    )
    df.loc[rng.random(n) < 0.1, "age"] = np.nan
    df.loc[rng.random(n) < 0.05, "plan"] = None
    df.loc[rng.random(n) < 0.05, "signup"] = None
    df.loc[rng.random(n) < 0.05, "review"] = None
    logit = (df["age"].fillna(50) - 50) / 15 + (df["plan"] == "pro") * 1.5 + rng.normal(0, 1, n)
    df["churn"] = np.where(logit > 0.3, "yes_churn", "no_churn")
    df["spend"] = df["income"] * 0.01 + df["age"].fillna(50) * 3 + rng.normal(0, 20, n)
    return df


@pytest.fixture
def messy() -> pd.DataFrame:
    return make_messy()
