"""The CLI's contract: options map onto the spec, errors are one line with exit code 2, help is cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from forgeml.cli import main, train
from forgeml.spec import OVERRIDES


def test_every_train_option_maps_onto_the_spec():
    import inspect

    params = set(inspect.signature(train).parameters)
    cli_only = {"data", "spec", "as_json", "quiet", "ignore", "id_column", "resume"}
    assert params - cli_only <= set(OVERRIDES) | {"seed", "models"}


def test_help_is_fast_and_imports_nothing_heavy():
    code = "import sys, forgeml.cli; print(','.join(m for m in ('pandas','sklearn','mlflow','lightgbm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--tim", "3"], "No such option: --tim"),
        (["train", "missing.csv", "--target", "y"], "data file 'missing.csv' not found"),
        (["train", "sklearn://iris", "--target", "species"], "target column 'species' not found"),
        (["train", "sklearn://iris", "--target", "target", "--models", "forest"], "unknown model family 'forest'"),
        (["train", "--spec", "nope.yaml"], "spec file 'nope.yaml' not found"),
        (["predict", "ghost@latest", "x.csv"], "ghost"),
        (["models", "alias", "m", "x", "prod"], "Invalid value for 'version'"),
    ],
)
def test_user_errors_are_one_line_exit_2(argv, message, capsys, fresh_home):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_init_prints_the_spec(capsys):
    assert main(["init"]) == 0
    assert "time_limit: 60" in capsys.readouterr().out


def test_ui_opens_mlflow_on_the_forgeml_store(monkeypatch, fresh_home):
    import os

    calls = []
    monkeypatch.setattr(os, "execv", lambda exe, argv: calls.append(argv))
    assert main(["ui", "--port", "5077"]) == 0
    argv = calls[0]
    assert argv[1:4] == ["-m", "mlflow", "ui"]
    assert argv[argv.index("--backend-store-uri") + 1] == f"sqlite:///{fresh_home.resolve()}/mlflow.db"
    assert argv[argv.index("--port") + 1] == "5077"
