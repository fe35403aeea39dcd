"""`paperops status` (the end of `make run`): one line per paper, gate verdict and version served."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.e2e


def test_status_after_the_smoke_pipeline(smoke_repo) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    out = smoke_repo.run("paperops", "status").stdout
    lines = out.strip().splitlines()
    papers = yaml.safe_load((smoke_repo.path / "params.yaml").read_text())["papers"]
    assert [line.split()[0] for line in lines] == papers, out
    client = MlflowClient(tracking_uri=smoke_repo.env["MLFLOW_TRACKING_URI"])
    for paper, line in zip(papers, lines, strict=True):
        record = json.loads((smoke_repo.path / "reports" / paper / "registration.json").read_text())
        if record["gate_passed"]:
            assert f"gate passed (v{record['version']})" in line, line
        else:
            assert f"gate FAILED (v{record['version']}): " in line and "; ".join(record["reasons"]) in line, line
        try:
            served = str(client.get_model_version_by_alias(paper, "champion").version)
        except MlflowException:
            served = None
        assert (f"serving v{served}" in line) if served else ("nothing served" in line), line


def test_status_before_any_run_and_with_bad_params(tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "params.yaml").write_text((root / "params.yaml").read_text())
    # A fresh checkout: no tracking server named (other tests' mlflow.set_tracking_uri exports one).
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(
        [sys.executable, "-m", "components", "status"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), proc.stderr
    assert all("not registered yet" in line and "nothing served" in line for line in proc.stdout.splitlines())
    assert not (tmp_path / "mlflow.db").exists(), "status never creates a tracking store"
    (tmp_path / "params.yaml").write_text("scale: smoke\n")
    proc = subprocess.run(
        [sys.executable, "-m", "components", "status"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "papers: missing" in proc.stderr
