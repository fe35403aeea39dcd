"""A service that cannot load its model stops at once with what to do; `paperops serve` needs no venv on PATH.

BentoML 1.4 respawns a worker whose ``__init__`` raised, forever, and ``/readyz`` never answers;
serving/common.py's ``fail_startup`` stops the server (exit 3) and ``paperops serve`` checks the
model before it starts BentoML (exit 2).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.http_server import free_port
from tests.project_copy import ROOT

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
EXIT_WITHIN_S = 90  # a worker imports torch and MLflow first: ~12 s on the busy 2-core dev box


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=EXIT_WITHIN_S)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def _bare_env(**extra: str) -> dict[str, str]:
    """No venv on PATH, no tracking URI: what a user gets running .venv/bin/paperops from a shell."""
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR", "PYTHONPATH")}
    return {**keep, "PATH": "/usr/bin:/bin", "BENTOML_DO_NOT_TRACK": "true", "DO_NOT_TRACK": "1", **extra}


def test_bentoml_serve_without_a_store_exits_with_what_to_do(tmp_path) -> None:
    env = _bare_env(PYTHONPATH=str(ROOT), PAPEROPS_ROOT=str(tmp_path))
    rc, out, took = _run(
        [str(BIN / "bentoml"), "serve", "serving.relu_neuron:Service", "--port", str(free_port())], tmp_path, env
    )
    assert rc == 3, out[-3000:]
    assert "no MLflow store" in out and "make run" in out and "paperops register relu_neuron" in out, out[-3000:]
    assert not (tmp_path / "mlflow.db").exists(), "no empty store is created"


def test_bentoml_serve_of_a_missing_version_exits(smoke_repo) -> None:
    env = {**smoke_repo.env, "PAPEROPS_MODEL_VERSION": "999"}
    rc, out, _ = _run(
        [str(BIN / "bentoml"), "serve", "serving.fractional_lms:Service", "--port", str(free_port())],
        smoke_repo.path,
        env,
    )
    assert rc == 3 and "version 999" in out and "--version N" in out, out[-3000:]


def test_paperops_serve_checks_the_model_first(tmp_path) -> None:
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "relu_neuron.py").write_text("")  # `paperops serve` looks for the service file
    rc, out, _ = _run([str(BIN / "paperops"), "serve", "relu_neuron"], tmp_path, _bare_env(PYTHONPATH=str(ROOT)))
    assert rc == 2 and "cannot serve relu_neuron" in out and "make run" in out, out[-3000:]


def test_paperops_serve_runs_without_an_activated_venv(smoke_repo) -> None:
    env = _bare_env(
        MLFLOW_TRACKING_URI=smoke_repo.env["MLFLOW_TRACKING_URI"],
        **{k: v for k, v in smoke_repo.env.items() if k.startswith("PAPEROPS_")},
    )
    from tests.http_server import served_env

    env.update({k: v for k, v in served_env(smoke_repo, "fractional_lms").items() if k == "PAPEROPS_MODEL_VERSION"})
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "paperops"), "serve", "fractional_lms", "--port", str(port)],
        cwd=smoke_repo.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("paperops serve did not become ready in 120 s")
        r = httpx.post(f"http://127.0.0.1:{port}/filter", json={"x": [0.0] * 32}, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
