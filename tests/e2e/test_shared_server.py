"""A team's set-up: forgeml against a shared MLflow tracking server (FORGEML_TRACKING_URI), on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root}/server.db", "--artifacts-destination", str(root / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("mlflow server exited at start-up")
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail("mlflow server did not answer /health within 90 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_train_and_load_through_a_tracking_server(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FORGEML_TRACKING_URI", server)
    monkeypatch.setenv("FORGEML_HOME", str(tmp_path / "client-home"))  # only the download cache lives here
    import forgeml
    from forgeml.registry.store import Store

    result = forgeml.train("sklearn://wine", target="target", models="linear", time_limit=30, name="wine-shared")
    assert result.version == 1
    assert Store().list_models()[0]["name"] == "wine-shared"
    assert not (tmp_path / "client-home" / "mlflow.db").exists()

    # another process (another machine, for the server) loads it by reference
    code = ("import forgeml; m = forgeml.load('wine-shared@latest');"
            "from forgeml.data.io import read_table; print(list(m.predict(read_table('sklearn://wine').head(5))))")
    env = {**os.environ, "FORGEML_TRACKING_URI": server, "FORGEML_HOME": str(tmp_path / "other-home")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    from forgeml.data.io import read_table

    assert out.stdout.strip() == str(list(result.model.predict(read_table("sklearn://wine").head(5))))
