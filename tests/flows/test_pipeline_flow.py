"""The Prefect flow runs the DVC stages as tasks (ephemeral test server, real DVC, real MLflow)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

PAPER = "noise2score"


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_flow_runs_stages_through_dvc(smoke_repo, prefect_harness, monkeypatch) -> None:
    from mlflow import MlflowClient

    from flows.pipeline import paper_pipeline

    for key in ("MLFLOW_TRACKING_URI", "PATH", "PAPEROPS_NO_PROGRESS"):
        monkeypatch.setenv(key, smoke_repo.env[key])
    uri = smoke_repo.env["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # not the process-wide registry URI
    before = {str(v.version) for v in client.search_model_versions(f"name='{PAPER}'")}
    # Only the register stage is out of date: DVC must skip the other three.
    (smoke_repo.path / "reports" / PAPER / "registration.json").unlink()

    state = paper_pipeline(PAPER, str(smoke_repo.path), return_state=True)

    assert state.is_completed(), state
    results = state.result()
    assert [r["stage"] for r in results] == [
        f"{s}@{PAPER}" for s in ("validate", "prepare", "train", "evaluate", "register")
    ]
    assert [r["ran"] for r in results] == [False, False, False, False, True]
    assert [r["outcome"] for r in results] == ["skipped"] * 4 + ["ran"]
    after = {str(v.version) for v in client.search_model_versions(f"name='{PAPER}'")}
    registration = json.loads((smoke_repo.path / "reports" / PAPER / "registration.json").read_text())
    assert after - before == {registration["version"]}


def test_task_tells_a_run_cache_restore_from_a_run(smoke_repo, prefect_harness, monkeypatch) -> None:
    """prepare@<paper> with its output deleted and its inputs unchanged: DVC restores it from the
    run cache without running the command, and the task says so (it used to log "ran")."""
    import shutil

    from prefect import flow

    from flows.pipeline import dvc_stage

    for key in ("MLFLOW_TRACKING_URI", "PATH", "PAPEROPS_NO_PROGRESS"):
        monkeypatch.setenv(key, smoke_repo.env[key])
    shutil.rmtree(smoke_repo.path / "data" / PAPER)

    @flow
    def one() -> list[dict]:
        return [dvc_stage("prepare", PAPER, str(smoke_repo.path)), dvc_stage("prepare", PAPER, str(smoke_repo.path))]

    restored, skipped = one()

    assert restored == {"stage": f"prepare@{PAPER}", "ran": False, "outcome": "restored"}
    assert skipped == {"stage": f"prepare@{PAPER}", "ran": False, "outcome": "skipped"}
    assert (smoke_repo.path / "data" / PAPER).is_dir()
