"""Shared fixtures: a throw-away copy of the project where the real pipeline ran on the smoke scale.

``smoke_repo`` copies the working tree (tracked and untracked-but-not-ignored files) into a temporary
git repository, sets ``scale: smoke`` and runs a real ``dvc repro`` there, tracking to a real MLflow
SQLite store inside the copy. End-to-end tests (DVC, MLflow, Prefect, BentoML) share it, so the
pipeline runs once per test session.
"""

from __future__ import annotations

import pytest

from tests.project_copy import ProjectCopy, copy_project


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    """A project copy after a real ``dvc repro`` on the smoke scale (one per session)."""
    base = tmp_path_factory.mktemp("smoke")
    project = copy_project(base / "project")
    project.run("dvc", "repro", timeout=1200)
    return project
