"""Shared fixtures: an isolated FORGEML_HOME and generated tables with the messiness of real ones."""

from __future__ import annotations

import pandas as pd
import pytest

from tables import make_churn, make_prices


@pytest.fixture(autouse=True, scope="session")
def _session_home(tmp_path_factory: pytest.TempPathFactory):
    """Every test session gets its own store, so nothing touches ./forgeml-home."""
    home = tmp_path_factory.mktemp("forgeml-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("FORGEML_HOME", str(home))
    mp.delenv("FORGEML_TRACKING_URI", raising=False)
    yield home
    mp.undo()


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """A store of the test's own, for tests that count runs or versions."""
    home = tmp_path / "home"
    monkeypatch.setenv("FORGEML_HOME", str(home))
    return home


@pytest.fixture
def churn() -> pd.DataFrame:
    return make_churn()


@pytest.fixture
def prices() -> pd.DataFrame:
    return make_prices()
