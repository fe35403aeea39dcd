"""Shared fixtures: a throw-away copy of the project where the real pipeline ran on the smoke scale.

``smoke_repo`` copies the working tree (tracked and untracked-but-not-ignored files) into a temporary
git repository, sets ``scale: smoke`` and runs a real ``dvc repro`` there, tracking to a real MLflow
SQLite store inside the copy. End-to-end tests (DVC, MLflow, Prefect, BentoML) share it, so the
pipeline runs once per test session.

``make test`` runs two pytest-xdist workers (``-n 2 --dist loadscope``): each test module runs on one
worker, so its module fixtures are built once. The smoke pipeline runs once for both workers: the
first that needs it builds it under a file lock in their common temporary folder and each worker
then works on a copy of its own (``_built_once``, ``tests.project_copy.duplicate``). That halves the
CPU and memory the build takes; not its wall time, ~12 min either way on two cores, since its
stages run one after another on about one core (the other worker waits meanwhile). Grouping every user of
``smoke_repo`` onto one worker (``--dist loadgroup`` with ``xdist_group`` marks) does not work with
pytest 9: xdist 3.8 rewrites ``item._nodeid``, which pytest 9's ``nodeid`` no longer reads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.project_copy import QUIET_ENV, ProjectCopy, copy_project, duplicate


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    """A project copy after a real ``dvc repro`` on the smoke scale (one per session).

    ``PAPEROPS_TEST_SMOKE_REPO=<dir>`` reuses a copy where that already ran (a local edit-test loop).
    """
    if reuse := os.environ.get("PAPEROPS_TEST_SMOKE_REPO"):
        path = Path(reuse).resolve()
        env = {
            **os.environ,
            **QUIET_ENV,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{path / 'mlflow.db'}",
            "PREFECT_HOME": str(path / ".prefect"),
        }
        return ProjectCopy(path, env)
    base = tmp_path_factory.mktemp("smoke")
    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # one process: build in place
        project = copy_project(base / "project")
        project.run("dvc", "repro", timeout=1800)
        return project
    return duplicate(_built_once(tmp_path_factory.getbasetemp().parent / "smoke-build"), base / "project")


def _built_once(shared: Path) -> Path:
    """The smoke pipeline, run once for all pytest-xdist workers of this session (their common temp folder).

    The first worker that needs it builds it while the others wait on the lock; each then works on a
    copy of its own (``duplicate``), so no worker sees another's changes. A failed build is not retried
    by the next worker: its error is kept and raised again.
    """
    from filelock import FileLock

    done, failed = shared / "done", shared / "failed.txt"
    with FileLock(str(shared) + ".lock"):
        if not done.is_file() and not failed.is_file():
            shared.mkdir(parents=True, exist_ok=True)
            try:
                copy_project(shared / "project").run("dvc", "repro", timeout=1800)
            except Exception as exc:
                failed.write_text(f"{type(exc).__name__}: {exc}")
                raise
            done.touch()
    if failed.is_file():
        raise RuntimeError(f"the shared smoke build failed in another worker:\n{failed.read_text()[-6000:]}")
    return shared / "project"


@pytest.fixture(scope="module", autouse=True)
def _stop_forkserver() -> Iterator[None]:
    """Stop a fork server a module's in-process training started (FeSTA's clients and pools,
    EBCLR's worker pool): it lives as long as the process that started it, here the pytest worker,
    holding torch (~0.9 GB) for the rest of the session. ``_stop`` is the private method CPython's
    own tests use; the next user starts a new one."""
    yield
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_pid", None) is not None:
        server._stop()
