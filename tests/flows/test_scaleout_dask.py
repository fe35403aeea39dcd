"""The all-papers flow in parallel on a Dask LocalCluster (2 worker processes), each paper in its
own checkout sharing the DVC cache and the MLflow store, fanned back into the main checkout; and
a paper that fails does not stop the others, the flow ends Failed naming it (both runners)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.project_copy import copy_project

pytestmark = pytest.mark.e2e

FAST = ["relu_neuron", "fractional_lms"]
GONE = "noise2score"  # taken out of the copy's params.yaml papers: its DVC stages no longer exist


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _status_table(flow_run_id) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["all-papers-status"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            ),
            sort=ArtifactSort.CREATED_DESC,
        )
    return found[0].data


def test_parallel_fan_out_and_in_and_a_failed_paper(tmp_path, prefect_harness, monkeypatch) -> None:
    from flows.pipeline import STAGES, all_papers

    project = copy_project(tmp_path / "main")
    params = project.path / "params.yaml"
    params.write_text(re.sub(rf"(?m)^  - {GONE}\n", "", params.read_text()))
    project.run("git", "commit", "-qam", f"without {GONE}")
    for key in ("MLFLOW_TRACKING_URI", "PATH", "PAPEROPS_NO_PROGRESS", "PAPEROPS_SYSMETRICS_S"):
        monkeypatch.setenv(key, project.env[key])
    papers = [GONE, *FAST]

    state = all_papers(str(project.path), papers=papers, parallel=True, workers=2, return_state=True)

    assert state.is_failed(), state
    assert state.message.startswith("1 of 3 papers failed (2 completed)")
    assert f"{GONE}: validate@{GONE} failed:" in state.message and "not found inside 'dvc.yaml'" in state.message
    lock = yaml.safe_load((project.path / "dvc.lock").read_text())["stages"]
    for paper in FAST:
        assert all(f"{stage}@{paper}" in lock for stage in STAGES), sorted(lock)
        assert (project.path / "reports" / paper / "registration.json").is_file()
        assert (project.path / "models" / paper).is_dir()
    stages = [f"{stage}@{paper}" for paper in FAST for stage in STAGES]
    status = project.run("dvc", "status", "--json", *stages).stdout
    assert status.strip() in ("{}", ""), status  # outputs and lock entries agree in the main checkout
    table = _status_table(state.state_details.flow_run_id)
    assert f"| {GONE} | failed at validate@{GONE}" in table
    assert all(f"| {paper} | completed (5 stages ran) |" in table for paper in FAST), table

    # one after another in the main checkout: DVC finds a fanned-in paper up to date (nothing
    # reruns), the missing paper fails first and the next one still runs; the flow names the failure
    state = all_papers(str(project.path), papers=[GONE, FAST[0]], return_state=True)

    assert state.is_failed(), state
    assert state.message.startswith(f"1 of 2 papers failed (1 completed): {GONE}: validate@{GONE} failed:")
    table = _status_table(state.state_details.flow_run_id)
    assert f"| {GONE} | failed at validate@{GONE}" in table and f"| {FAST[0]} | completed (0 stages ran) |" in table
