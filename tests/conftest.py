"""Shared fixtures: a throw-away copy of the project where the real pipeline ran on the smoke scale.

``smoke_repo`` copies the working tree (tracked and untracked-but-not-ignored files) into a temporary
git repository, sets ``scale: smoke`` and runs a real ``dvc repro`` there, tracking to a real MLflow
SQLite store inside the copy. End-to-end tests (DVC, MLflow, Prefect, BentoML) share it, so the
pipeline runs once per test session.

``make test`` runs two pytest-xdist workers (``-n 2 --dist loadgroup``): ``pytest_collection_modifyitems``
keeps each test module on one worker (its module fixtures are built once) and puts every module
that uses ``smoke_repo`` on one worker too (the pipeline still runs once).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.project_copy import QUIET_ENV, ProjectCopy, copy_project


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests for ``--dist loadgroup``: by module, and every module with a user of
    ``smoke_repo`` in one group (its module fixtures, too, are then built once)."""

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    smoke = {module(i) for i in items if "smoke_repo" in getattr(i, "fixturenames", ())}
    for item in items:
        item.add_marker(pytest.mark.xdist_group("smoke_repo" if module(item) in smoke else module(item)))


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
