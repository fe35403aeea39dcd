"""``paperops build``: a real ``bentoml build`` without network, then ``bentoml serve`` of the Bento.

The Bento of relu_neuron is built from what the smoke pipeline registered, with every proxy pointed
at a closed port and pip's index off (a lock resolution or an install of uv would fail the build),
into a BentoML home of its own. It must carry the registered model (same bytes, version in its
labels), requirements pinned exactly as constraints.txt and nothing of the orchestration tools, and
a Dockerfile that binds the container's interface. Served by ``bentoml serve <tag>`` from an empty
folder, with the registry unreachable, it answers with the version baked in.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.http_server import bentoml_server

pytestmark = pytest.mark.e2e

PAPER = "relu_neuron"
OFFLINE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "ALL_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "PIP_NO_INDEX": "1",
    "UV_OFFLINE": "1",
}


def _pins(constraints: Path) -> dict[str, str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            pins[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    return pins


@pytest.fixture(scope="module")
def bento(smoke_repo, tmp_path_factory):
    home = tmp_path_factory.mktemp("bentoml_home")
    registration = json.loads((smoke_repo.path / "reports" / PAPER / "registration.json").read_text())
    env = {**smoke_repo.env, **OFFLINE, "BENTOML_HOME": str(home)}
    env.pop("PAPEROPS_MODEL_VERSION", None)
    cmd = [sys.executable, "-m", "components", "build", PAPER, "--version", str(registration["version"])]
    proc = subprocess.run(cmd, cwd=smoke_repo.path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tag_version = (home / "bentos" / PAPER / "latest").read_text().strip()
    folder = home / "bentos" / PAPER / tag_version
    return {
        "home": home,
        "folder": folder,
        "tag": f"{PAPER}:{tag_version}",
        "version": str(registration["version"]),
        "log": proc.stdout + proc.stderr,
    }


def test_bento_carries_its_model_version(bento, smoke_repo) -> None:
    info = yaml.safe_load((bento["folder"] / "bento.yaml").read_text())
    assert info["labels"]["model_version"] == bento["version"]
    (model,) = info["models"]
    assert model["tag"] == info["labels"]["model"] == info["args"]["paperops_model"]
    assert model["tag"].startswith(f"{PAPER}-model:v{bento['version']}-")
    name, version = model["tag"].split(":")
    stored = bento["home"] / "models" / name / version / "files"
    exported = smoke_repo.path / "models" / PAPER / "model"
    for f in exported.iterdir():  # the registered model's files, byte for byte
        assert hashlib.sha256((stored / f.name).read_bytes()).digest() == hashlib.sha256(f.read_bytes()).digest()
    assert "uv is not installed" not in bento["log"] and "Locking PyPI" not in bento["log"]


def test_bento_requirements_are_the_tested_pins(bento) -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    py = bento["folder"] / "env" / "python"
    assert not (py / "requirements.lock.txt").exists()  # no lock resolution against an index
    pins = _pins(Path(__file__).resolve().parents[2] / "constraints.txt")
    lines = [ln for ln in (py / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    reqs = [Requirement(ln) for ln in lines]
    names = {canonicalize_name(r.name) for r in reqs}
    for r in reqs:
        (spec,) = r.specifier
        assert spec.operator == "==", f"{r} is not an exact pin"
        name = canonicalize_name(r.name)
        if name in pins:
            assert spec.version == pins[name], f"{r}: constraints.txt pins {pins[name]}"
    assert f"torch=={pins['torch']}" in lines and {"bentoml", "numpy", "safetensors", "pillow"} <= names
    assert not names & {"mlflow", "dvc", "prefect", "uv"}, "a Bento serves its model; it runs no pipeline"


def test_container_binds_its_interface(bento) -> None:
    dockerfile = (bento["folder"] / "env" / "docker" / "Dockerfile").read_text()
    assert "ARG BENTOML_HOST=0.0.0.0" in dockerfile and "ENV BENTOML_HOST=$BENTOML_HOST" in dockerfile
    info = yaml.safe_load((bento["folder"] / "bento.yaml").read_text())
    assert info["services"][0]["config"]["http"]["host"] == "127.0.0.1"  # a host's `bentoml serve <tag>`


def test_bento_serves_its_baked_model(bento, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAPEROPS_", "MLFLOW_"))}
    env.update(BENTOML_HOME=str(bento["home"]), BENTOML_DO_NOT_TRACK="true")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'no-such-dir' / 'mlflow.db'}"  # no registry reachable
    with bentoml_server(bento["tag"], tmp_path, env, tmp_path / "bento.log") as url:
        r = httpx.post(f"{url}/predict", json={"x": [[1.0, 0.5], [-0.2, 0.3]]}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["x-model"] == PAPER and r.headers["x-model-version"] == bento["version"]
        assert len(r.json()["y"]) == 2
        spec = httpx.get(f"{url}/docs.json", timeout=30).json()
        assert f"{PAPER} v{bento['version']} from Bento model {PAPER}-model:v" in spec["info"]["description"]
