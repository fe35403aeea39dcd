"""Start a real ``bentoml serve`` on 127.0.0.1 and wait until it answers ``/readyz``.

Shared by the HTTP tests of every served paper and the serving benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


class ServerError(RuntimeError):
    """The server exited or did not become ready; the message ends with its log."""


class ServerURL(str):
    """The base URL of a running server (a str), with the pid of its ``bentoml serve`` process."""

    pid: int


def stop_group(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """Stop ``proc`` and every process of its group (it was started with ``start_new_session``):
    SIGTERM, then SIGKILL after ``grace_s`` seconds, then SIGKILL to whatever the group still holds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):  # children that outlived their parent (workers, flow runs)
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def process_group(
    cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` in its own process group, output to ``log``; stop the whole group after."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop_group(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_env(project, paper: str) -> dict[str, str]:
    """The environment that serves what the smoke pipeline registered for ``paper``: the champion when
    the run earned the alias, else the version it registered (``PAPEROPS_MODEL_VERSION``)."""
    registration = json.loads((project.path / "reports" / paper / "registration.json").read_text())
    env = dict(project.env)
    if not registration["champion_moved"]:
        env["PAPEROPS_MODEL_VERSION"] = str(registration["version"])
    return env


@contextmanager
def bentoml_server(target: str, cwd: Path, env: dict[str, str], log: Path, ready_s: float = 120) -> Iterator[ServerURL]:
    """Serve ``target`` (``serving.<paper>:Service``) from ``cwd``; yield its base URL; stop it after.

    Raises:
        ServerError: the process exited or was not ready within ``ready_s`` seconds.
    """
    port = free_port()
    bentoml = str(Path(sys.executable).parent / "bentoml")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [bentoml, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = ServerURL(f"http://127.0.0.1:{port}")
    url.pid = proc.pid
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise ServerError(f"bentoml serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"server not ready in {ready_s:.0f} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(proc)
