"""prefect.yaml is a deployment a worker anywhere can run: Prefect's own model accepts it, and its
pull steps, run by Prefect's own step runner, clone a git repository and land in the clone."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.project_copy import ROOT, copy_project


def _prefect_yaml() -> dict:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def test_prefect_yaml_validates_with_prefects_model() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(_prefect_yaml())
    assert {d.name for d in model.deployments} == {"nightly", "one-paper"}
    text = (ROOT / "prefect.yaml").read_text()
    assert str(ROOT) not in text and "set_working_directory" not in text  # no machine's path baked in


@pytest.mark.parametrize("branch", [None, "main"])
def test_pull_steps_clone_the_repository_and_the_entrypoints_load(tmp_path, monkeypatch, branch) -> None:
    from prefect.deployments.steps.core import run_steps
    from prefect.flows import load_flow_from_entrypoint

    project = copy_project(tmp_path / "src")
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(project.path), str(bare)], check=True)
    worker = tmp_path / "worker"
    worker.mkdir()
    monkeypatch.chdir(worker)
    monkeypatch.setenv("PAPEROPS_GIT_URL", str(bare))
    if branch:
        monkeypatch.setenv("PAPEROPS_GIT_BRANCH", branch)
    else:
        monkeypatch.delenv("PAPEROPS_GIT_BRANCH", raising=False)

    output = asyncio.run(run_steps(_prefect_yaml()["pull"]))

    clone = (worker / output["directory"]).resolve()
    assert clone == (worker / "paperops").resolve()
    assert (clone / "dvc.yaml").is_file() and (clone / "params.yaml").is_file()
    monkeypatch.chdir(clone)  # what Prefect does with the steps' "directory" before loading the flow
    for deployment in _prefect_yaml()["deployments"]:
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert Path(flow.fn.__code__.co_filename).resolve().is_relative_to(clone)
        assert set(deployment["parameters"]) <= set(flow.parameters.properties)
