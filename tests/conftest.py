"""Shared fixtures: a throw-away copy of the project where the real pipeline ran on the smoke scale.

``smoke_repo`` copies the working tree (tracked and untracked-but-not-ignored files) into a temporary
git repository, sets ``scale: smoke`` and runs a real ``dvc repro`` there, tracking to a real MLflow
SQLite store inside the copy. End-to-end tests (DVC, MLflow, Prefect, BentoML) share it, so the
pipeline runs once per test session.

``make test`` runs two pytest-xdist workers (``-n 2 --dist loadscope``): each test module runs on one
worker, so its module fixtures are built once; each worker that runs a user of ``smoke_repo``
builds its own (twice in all, in parallel). Grouping every user of ``smoke_repo`` onto one worker
(``--dist loadgroup`` with ``xdist_group`` marks) does not work with pytest 9: xdist 3.8 rewrites
``item._nodeid``, which pytest 9's ``nodeid`` no longer reads, so the marks are silently ignored.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.project_copy import QUIET_ENV, ProjectCopy, copy_project


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
    project = copy_project(base / "project")
    project.run("dvc", "repro", timeout=1800)
    return project
