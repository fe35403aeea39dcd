"""Scale-out on a process work pool, all on 127.0.0.1: a Prefect server, an MLflow server (SQLite
store, artifacts folder), two `prefect worker start` processes and a git repository of a smoke
project copy; the `one-paper` deployment of prefect.yaml runs two papers at once, each in its own
clone on its own worker, sharing one DVC remote (a folder) and the MLflow server."""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.http_server import free_port, stop_group
from tests.project_copy import copy_project

pytestmark = pytest.mark.e2e

PAPERS = ["relu_neuron", "fractional_lms"]  # seconds each at smoke scale
STAGES = ["validate", "prepare", "train", "evaluate", "register"]


def _wait_http(url: str, procs: list[subprocess.Popen], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a server exited before {url} answered")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.5)
    raise TimeoutError(url)


@pytest.fixture
def services(tmp_path):
    """Start processes in their own process groups; kill every group at teardown."""
    procs: list[subprocess.Popen] = []

    def start(name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop_group(proc, grace_s=15)


def test_two_workers_run_two_papers_at_once(tmp_path, services) -> None:
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    project = copy_project(tmp_path / "src")  # scale: smoke, committed
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(project.path), str(origin)], check=True)
    remote = tmp_path / "dvc-remote"
    remote.mkdir()
    prefect_port, mlflow_port = free_port(), free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    tracking = f"http://127.0.0.1:{mlflow_port}"
    env = {
        **project.env,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "MLFLOW_TRACKING_URI": tracking,
    }
    server = services(
        "prefect-server",
        ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port), "--no-services"],
        env,
        tmp_path,
    )
    mlflow_server = services(
        "mlflow-server",
        ["mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--artifacts-destination", str(tmp_path / "mlartifacts"),
         "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
        env,
        tmp_path,
    )  # fmt: skip
    _wait_http(f"{api}/health", [server])
    project.env.update(env)
    project.run("prefect", "work-pool", "create", "paperops", "--type", "process")
    project.run("prefect", "deploy", "--no-prompt", "--name", "one-paper")
    worker_env = {**env, "PAPEROPS_GIT_URL": str(origin), "PAPEROPS_DVC_REMOTE": str(remote)}
    for name in ("w1", "w2"):
        services(
            name,
            ["prefect", "worker", "start", "--pool", "paperops", "--name", name, "--limit", "1"],
            worker_env,
            tmp_path,
        )
    _wait_http(f"{tracking}/health", [mlflow_server])

    with temporary_settings({PREFECT_API_URL: api}):
        runs = {
            paper: run_deployment("paper-pipeline/one-paper", parameters={"paper": paper, "share": True}, timeout=0).id
            for paper in PAPERS
        }
        deadline = time.monotonic() + 420
        with get_client(sync_client=True) as client:
            while True:
                flow_runs = {paper: client.read_flow_run(run_id) for paper, run_id in runs.items()}
                if all(r.state and r.state.is_final() for r in flow_runs.values()):
                    break
                assert time.monotonic() < deadline, {p: r.state for p, r in flow_runs.items()}
                time.sleep(2)

    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("w1", "w2")}
    for paper, flow_run in flow_runs.items():
        assert flow_run.state.is_completed(), (paper, flow_run.state, logs)
    # they ran at once, on different workers
    (a, b) = flow_runs.values()
    assert max(a.start_time, b.start_time) < min(a.end_time, b.end_time), (
        a.start_time,
        a.end_time,
        b.start_time,
        b.end_time,
    )
    # a run's own log lines reach the output of the worker whose process ran it (both workers may
    # try to submit one run; the server aborts the second, which logs the run's id as well)
    ran_on = {paper: [w for w, log in logs.items() if f"Beginning flow run '{paper}'" in log] for paper in PAPERS}
    assert sorted(w for ws in ran_on.values() for w in ws) == ["w1", "w2"], ran_on

    # both papers' runs and registered models are in the MLflow server
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    for paper in PAPERS:
        experiment = client.get_experiment_by_name(paper)
        assert experiment is not None, paper
        names = {r.info.run_name for r in client.search_runs([experiment.experiment_id])}
        assert {f"{paper}/{stage}/smoke" for stage in ("prepare", "train", "evaluate")} <= names, names
        assert client.search_model_versions(f"name='{paper}'"), paper

    # the DVC remote holds their outputs: a fresh clone of each result branch pulls them
    branches = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short)", "refs/heads/results"],
        cwd=origin, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for paper in PAPERS:
        branch = f"results/{paper}/{runs[paper]}"
        assert branch in branches, branches
        fresh = tmp_path / f"fresh-{paper}"
        subprocess.run(["git", "clone", "-q", "-b", branch, str(origin), str(fresh)], check=True)
        clone = type(project)(fresh, project.env)
        clone.run("dvc", "remote", "add", "--local", "-f", "-d", "shared", str(remote))
        stages = [f"{stage}@{paper}" for stage in STAGES]
        assert all(s in yaml.safe_load((fresh / "dvc.lock").read_text())["stages"] for s in stages)
        clone.run("dvc", "pull", *stages)
        assert (fresh / "models" / paper).is_dir() and any((fresh / "data" / paper).iterdir())
        status = clone.run("dvc", "status", "--json", *stages).stdout.strip()
        assert status in ("{}", ""), status
