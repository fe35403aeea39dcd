"""S3-compatible storage: a DVC remote and MLflow artifacts on a local S3 server (moto's server mode).

One real S3 endpoint on 127.0.0.1 (``moto_server``, the same HTTP API as AWS S3, MinIO or Ceph) with
one bucket, and the project's own commands against it, as README "S3-compatible storage" documents:

- DVC: a project copy runs the quickest smoke paper (``paperops run``), commits its outputs to
  DVC, pushes them to an ``s3://`` remote with ``endpointurl``; a fresh ``git clone`` pulls them
  back byte for byte, and every object in the bucket is the content its md5 name says.
- MLflow, direct: the run stores in a SQLite file and writes its artifacts straight to the bucket
  (``PAPEROPS_ARTIFACT_ROOT=s3://...`` + ``MLFLOW_S3_ENDPOINT_URL``); the registered model is
  read back from there.
- MLflow, proxied: ``mlflow server --artifacts-destination s3://...``; the clone registers the
  pulled model through the server with no S3 credentials of its own, the server puts it in the
  bucket, and the serving code (``components.model_source``) downloads it back through the server.

Both servers are stopped (their whole process group) when the module ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.http_server import free_port, process_group
from tests.project_copy import QUIET_ENV, ProjectCopy, copy_project

pytestmark = pytest.mark.timeout(900)

PAPER = "relu_neuron"  # the quickest smoke pipeline whose gate passes (so there is a champion)
BUCKET = "paperops"


@pytest.fixture(autouse=True)
def _mlflow_uris_restored() -> Iterator[None]:
    """``configure()`` (in ``fetch_registered`` and ``resolve``) sets MLflow's process-wide tracking and
    registry URIs; put them back, so later tests in this process do not talk to a stopped server."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = tracking_utils._tracking_uri, registry_utils._registry_uri
    yield
    tracking_utils._tracking_uri, registry_utils._registry_uri = saved


# moto accepts any credentials; the real tools still sign every request with them
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
S3_ENV = (*CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL", "PAPEROPS_ARTIFACT_ROOT", "AWS_ENDPOINT_URL")
OUTPUTS = (f"data/{PAPER}", f"models/{PAPER}", f"reports/{PAPER}")


def _wait(proc: subprocess.Popen, url: str, log: Path, ready_s: float = 180, body: str | None = None) -> None:
    """Wait until ``url`` answers 200 (with ``body``, when given: not another server that took the
    port); fail with the server's log if it exits or takes too long."""
    deadline = time.monotonic() + ready_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            answer = httpx.get(url, timeout=2)
            if answer.status_code == 200 and (body is None or answer.text.strip() == body):
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} not ready in {ready_s:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.3)


@dataclass
class S3:
    """The local S3 endpoint, a boto3 client on it and the environment that points tools at it."""

    endpoint: str
    client: object
    env: dict[str, str]

    def objects(self, prefix: str) -> dict[str, bytes]:
        """Every object under ``prefix``: key -> bytes."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        return {k: self.client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    import boto3

    log = tmp_path_factory.mktemp("moto") / "moto.log"
    port = free_port()
    env = {**os.environ, **CREDENTIALS}
    cmd = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with process_group(cmd, env, log) as proc:
        endpoint = f"http://127.0.0.1:{port}"
        _wait(proc, f"{endpoint}/moto-api/data.json", log, ready_s=60)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )
        client.create_bucket(Bucket=BUCKET)
        yield S3(endpoint, client, {**CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": endpoint})


@pytest.fixture(scope="module")
def mlflow_server(s3: S3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    """``mlflow server`` proxying artifacts to ``s3://paperops/mlflow``; started here, waited for by its user
    (its ~20 s start overlaps the pipeline run of ``project``)."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    # the server holds the S3 credentials and endpoint; its clients need neither. Job execution
    # (MLflow's GenAI job runner: seven extra processes) is off: nothing here uses it.
    env = {**os.environ, **QUIET_ENV, **s3.env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp / 'server.db'}",
        "--artifacts-destination",
        f"s3://{BUCKET}/mlflow",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with process_group(cmd, env, tmp / "server.log") as proc:
        yield proc, f"http://127.0.0.1:{port}", tmp / "server.log"


def _md5s(root: Path) -> dict[str, str]:
    files = [p for top in OUTPUTS for p in (root / top).rglob("*") if p.is_file()]
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def project(s3: S3, mlflow_server, tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    """A copy that ran PAPER with MLflow artifacts direct to S3, committed it to DVC, pushed to S3."""
    base = tmp_path_factory.mktemp("s3")
    project = copy_project(base / "project")
    params = project.path / "params.yaml"
    text = re.sub(r"(?m)^papers:\n(?:  - .*\n)+", f"papers:\n  - {PAPER}\n", params.read_text())
    params.write_text(re.sub(r"(?m)^blocks:\n(?:  .*\n)+", "blocks: {}\n", text))  # PAPER uses no block
    project.env.update(
        s3.env,
        MLFLOW_TRACKING_URI=f"sqlite:///{base / 'direct.db'}",
        PAPEROPS_ARTIFACT_ROOT=f"s3://{BUCKET}/direct",
        PYTHONPATH=str(project.path),  # the copy's own code, not an installed one
    )
    project.run("git", "commit", "-qam", f"{PAPER} alone")
    # the four stages in one process (what `dvc repro` runs as four), then their outputs into DVC
    project.run("paperops", "validate", PAPER)
    project.run("paperops", "run", PAPER)
    project.run("dvc", "commit", "-f")
    assert "up to date" in project.run("dvc", "status").stdout  # dvc.lock matches what ran
    # README "S3-compatible storage": the remote, its endpoint; credentials from the AWS variables
    project.run("dvc", "remote", "add", "-d", "s3remote", f"s3://{BUCKET}/dvc")
    project.run("dvc", "remote", "modify", "s3remote", "endpointurl", s3.endpoint)
    project.run("dvc", "push")
    project.run("git", "add", "-A")
    project.run("git", "commit", "-qm", "results, and the S3 remote")
    return project


@dataclass
class Clone:
    """A fresh clone of ``project``, and the md5 of each output right after ``dvc pull``."""

    project: ProjectCopy
    pulled: dict[str, str]


@pytest.fixture(scope="module")
def clone(project: ProjectCopy, s3: S3, mlflow_server, tmp_path_factory: pytest.TempPathFactory) -> Clone:
    """A fresh clone that pulled the outputs from S3, then registered the model via the MLflow server."""
    import mlflow

    dest = tmp_path_factory.mktemp("s3-clone") / "project"
    subprocess.run(["git", "clone", "-q", str(project.path), str(dest)], check=True)
    before = _md5s(dest)  # git brought the small `cache: false` reports only
    assert before and all(k.startswith(f"reports/{PAPER}/") and "/figures/" not in k for k in before), before
    clone = ProjectCopy(dest, {**project.env, "PYTHONPATH": str(dest)})
    clone.run("dvc", "pull")
    pulled = _md5s(dest)
    proc, url, log = mlflow_server
    _wait(proc, f"{url}/version", log, body=mlflow.__version__)
    # the client of a proxying server holds no S3 credentials and no endpoint
    clone.env = {k: v for k, v in clone.env.items() if k not in S3_ENV} | {"MLFLOW_TRACKING_URI": url}
    clone.run("paperops", "register", PAPER)
    return Clone(clone, pulled)


@pytest.mark.e2e
def test_dvc_remote_on_s3_round_trip(project: ProjectCopy, clone: Clone, s3: S3) -> None:
    cache = project.path / ".dvc" / "cache" / "files" / "md5"
    stored = {k.removeprefix("dvc/files/md5/"): v for k, v in s3.objects("dvc/").items()}
    for name, content in stored.items():  # content-addressed: each object is what its md5 name says
        assert content == (cache / name).read_bytes(), name
        if not name.endswith(".dir"):
            assert hashlib.md5(content).hexdigest() == name.replace("/", ""), name
    # every cached output of the lock is in the bucket: its directory manifest and each file it lists
    lock = yaml.safe_load((project.path / "dvc.lock").read_text())["stages"]
    dirs = [o["md5"] for s in lock.values() for o in s.get("outs", []) if o["md5"].endswith(".dir")]
    assert len(dirs) >= 3, dirs  # data/, models/ and the figures of PAPER
    for md5 in dirs:
        manifest = json.loads(stored[f"{md5[:2]}/{md5[2:]}"])
        for entry in manifest:
            assert f"{entry['md5'][:2]}/{entry['md5'][2:]}" in stored, entry
    pulled, original = clone.pulled, _md5s(project.path)
    assert pulled == original, set(pulled.items()) ^ set(original.items())
    assert f"models/{PAPER}/model/model.safetensors" in pulled and any(k.startswith("data/") for k in pulled)


def _model_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}


def _registered_bytes(objects: dict[str, bytes], prefix: str) -> dict[str, bytes]:
    """The exported model's files among the bucket objects under ``prefix`` (model_dir artifact)."""
    found: dict[str, dict[str, bytes]] = {}
    for key, content in objects.items():
        if key.startswith(prefix) and "/artifacts/model/" in key:
            folder, name = key.rsplit("/", 1)
            found.setdefault(folder, {})[name] = content
    assert len(found) == 1, sorted(found)
    return next(iter(found.values()))


@pytest.mark.e2e
def test_mlflow_artifacts_direct_to_s3(project: ProjectCopy, s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from components.tracking import fetch_registered

    uri = project.env["MLFLOW_TRACKING_URI"]
    client = MlflowClient(uri, uri)
    exp = client.get_experiment_by_name(PAPER)
    assert exp is not None and exp.artifact_location == f"s3://{BUCKET}/direct/{PAPER}"
    objects = s3.objects(f"direct/{PAPER}/")
    evaluate = client.search_runs([exp.experiment_id], filter_string="tags.`paperops.stage` = 'evaluate'")
    assert len(evaluate) == 1 and evaluate[0].info.artifact_uri.startswith(f"s3://{BUCKET}/direct/{PAPER}/")
    run_prefix = evaluate[0].info.artifact_uri.removeprefix(f"s3://{BUCKET}/")
    assert any(k.startswith(f"{run_prefix}/figures/") and k.endswith(".png") for k in objects), sorted(objects)
    exported = _model_files(project.path / "models" / PAPER / "model")
    assert {"model.safetensors", "config.json"} <= exported.keys()
    assert _registered_bytes(objects, f"direct/{PAPER}/") == exported  # the weights in the bucket

    version = json.loads((project.path / "reports" / PAPER / "registration.json").read_text())["version"]
    for key, value in {**s3.env, "MLFLOW_TRACKING_URI": uri}.items():
        monkeypatch.setenv(key, value)  # configure() below also points mlflow at the store
    fetched = fetch_registered(project.path, PAPER, version=str(version))
    assert _model_files(fetched.path) == exported  # and back through MLflow, from S3


@pytest.mark.e2e
def test_mlflow_server_proxies_artifacts_to_s3(
    clone: Clone, s3: S3, mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    from mlflow import MlflowClient

    from components.model_source import resolve
    from components.registry import get_paper

    _, url, _ = mlflow_server
    client = MlflowClient(url, url)
    exp = client.get_experiment_by_name(PAPER)
    assert exp is not None and exp.artifact_location.startswith("mlflow-artifacts:"), exp
    registration = json.loads((clone.project.path / "reports" / PAPER / "registration.json").read_text())
    assert registration["champion_moved"], registration  # the gate passed on the pulled metrics
    assert str(client.get_model_version_by_alias(PAPER, "champion").version) == str(registration["version"])
    exported = _model_files(clone.project.path / "models" / PAPER / "model")  # pulled from the DVC remote
    assert _registered_bytes(s3.objects("mlflow/"), "mlflow/") == exported

    # the serving path: champion resolved and downloaded through the server, no S3 access of its own
    for key in S3_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("PAPEROPS_ROOT", str(clone.project.path))
    monkeypatch.delenv("PAPEROPS_MODEL_DIR", raising=False)
    monkeypatch.delenv("PAPEROPS_MODEL_VERSION", raising=False)
    served = resolve(PAPER)
    assert served.version == str(registration["version"])
    assert _model_files(served.path) == exported
    paper = get_paper(PAPER)
    example = paper.example_input()
    out = paper.predict(paper.load(served.path), example)
    assert np.isfinite(np.asarray(out["image"] if isinstance(out, dict) else out, dtype=float)).all()


# --------------------------------------------------------------- PAPEROPS_ARTIFACT_ROOT, no server
def test_artifact_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.tracking.runs import artifact_location

    monkeypatch.delenv("PAPEROPS_ARTIFACT_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert artifact_location(tmp_path, PAPER) == (tmp_path / "mlartifacts" / PAPER).resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert artifact_location(tmp_path, PAPER) is None  # a server's own root, or its proxy
    monkeypatch.setenv("PAPEROPS_ARTIFACT_ROOT", "s3://bucket/team/")
    assert artifact_location(tmp_path, PAPER) == f"s3://bucket/team/{PAPER}"
    monkeypatch.setenv("PAPEROPS_ARTIFACT_ROOT", str(tmp_path / "elsewhere"))
    assert artifact_location(tmp_path, PAPER) == f"{(tmp_path / 'elsewhere').as_uri()}/{PAPER}"


def test_an_existing_experiment_keeps_its_artifacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mlflow import MlflowClient

    from components.tracking.runs import ensure_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("PAPEROPS_ARTIFACT_ROOT", raising=False)
    client = MlflowClient(uri)
    first = ensure_experiment(client, PAPER, tmp_path)
    local = (tmp_path / "mlartifacts" / PAPER).resolve().as_uri()
    monkeypatch.setenv("PAPEROPS_ARTIFACT_ROOT", "s3://bucket/team")
    with caplog.at_level("WARNING", logger="components.tracking.runs"):
        assert ensure_experiment(client, PAPER, tmp_path) == first
    assert client.get_experiment(first).artifact_location == local  # MLflow cannot move it
    assert f"keeps its artifacts at {local}, not s3://bucket/team/{PAPER}" in caplog.text
    other = ensure_experiment(client, "another", tmp_path)  # a new experiment goes to the new root
    assert client.get_experiment(other).artifact_location == "s3://bucket/team/another"
