"""End to end through the real tools: `dvc repro` on the smoke scale, then what it left behind.

The fixture ``smoke_repo`` (tests/conftest.py) ran a real ``dvc repro`` in a temporary git repo;
here we check the DVC outputs, the MLflow store (runs, params, step metrics, figures, tags,
registered version and alias) and the pickle-free model in the registry.
"""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.e2e

PAPER = "noise2score"
STAGES = ("prepare", "train", "evaluate", "register")


def test_dvc_outputs(smoke_repo) -> None:
    from components.outputs import GATE_KEYS, headline_keys
    from components.registry import get_paper

    every = json.loads((smoke_repo.path / "reports" / PAPER / "all_metrics.json").read_text())
    assert every and all(math.isfinite(v) for v in every.values())
    # metrics.json (what DVC shows): the gate's verdict and the paper's headline, a few keys
    metrics = json.loads((smoke_repo.path / "reports" / PAPER / "metrics.json").read_text())
    headline = headline_keys(get_paper(PAPER), every)
    assert headline and list(metrics) == sorted([*GATE_KEYS, *headline])
    assert all(metrics[k] == every[k] for k in headline)
    gate = get_paper(PAPER).gate(every)
    assert metrics["gate_passed"] == float(gate.passed) and metrics["gate_failures"] == len(gate.reasons)
    for rel in ("results.csv", "results.md", "registration.json"):
        assert (smoke_repo.path / "reports" / PAPER / rel).is_file(), rel
    assert any((smoke_repo.path / "reports" / PAPER / "figures").glob("*.png"))
    lock = (smoke_repo.path / "dvc.lock").read_text()
    for stage in STAGES:
        assert f"{stage}@{PAPER}" in lock


def test_second_repro_is_a_noop(smoke_repo) -> None:
    status = smoke_repo.run("dvc", "status", "--json")
    assert json.loads(status.stdout) == {}, status.stdout
    out = smoke_repo.run("dvc", "repro").stdout
    assert "didn't change" in out or "up to date" in out.lower()
    assert "Running stage" not in out


def test_dvc_metrics_and_push(smoke_repo) -> None:
    shown = smoke_repo.run("dvc", "metrics", "show", "--json").stdout
    assert PAPER in shown
    smoke_repo.run("dvc", "push")
    remote = smoke_repo.path.parent / "dvc-remote"
    assert any(p.is_file() for p in remote.rglob("*")), "dvc push stored the data in the local remote"


def test_mlflow_runs_and_registry(smoke_repo) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=smoke_repo.env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(PAPER)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    # the first pipeline: the four stage runs of `dvc repro`, nested under one parent run
    parent = next(r for r in runs if r.data.tags.get("paperops.stage") == "pipeline")
    assert parent.info.run_name == f"{PAPER}/pipeline/smoke" and parent.info.status == "FINISHED"
    assert parent.data.tags["paperops.pipeline"].startswith("dvc:")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    by_stage = {r.data.tags["paperops.stage"]: r for r in children}
    assert sorted(by_stage) == sorted(STAGES), [r.info.run_name for r in children]
    (registered,) = client.search_model_versions(f"run_id = '{by_stage['register'].info.run_id}'")
    assert parent.data.tags["registered_version"] == str(registered.version)
    headline = json.loads((smoke_repo.path / "reports" / PAPER / "metrics.json").read_text())
    assert {k: parent.data.metrics[k] for k in headline} == pytest.approx(headline)
    registration = json.loads((smoke_repo.path / "reports" / PAPER / "registration.json").read_text())
    for stage in STAGES:
        run = by_stage[stage]
        assert run.info.run_name == f"{PAPER}/{stage}/smoke"
        assert run.info.status == "FINISHED"
        assert run.data.tags["paperops.scale"] == "smoke"
        assert len(run.data.tags["mlflow.source.git.commit"]) == 40
        assert "seed" in run.data.params
    assert "dvc.data_md5" in by_stage["train"].data.tags
    train = by_stage["train"]
    loss_key = next(k for k in train.data.metrics if "loss" in k)
    history = client.get_metric_history(train.info.run_id, loss_key)
    assert len({m.step for m in history}) > 1, "training logs the loss per step"
    artifacts = [a.path for a in client.list_artifacts(by_stage["evaluate"].info.run_id, "figures")]
    assert any(p.endswith(".png") for p in artifacts)
    evaluate_metrics = {k: v for k, v in by_stage["evaluate"].data.metrics.items() if not k.startswith("system/")}
    assert any(k.startswith("system/") for k in train.data.metrics), "system metrics are logged"
    assert evaluate_metrics == pytest.approx(
        json.loads((smoke_repo.path / "reports" / PAPER / "all_metrics.json").read_text())
    )

    version = client.get_model_version(PAPER, registration["version"])
    assert version.tags["gate.passed"] == str(registration["gate_passed"])
    assert registration["champion_moved"] == registration["gate_passed"]  # `dvc repro` is no experiment
    assert registration["experiment"] is None
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens it on its runs
    aliases = client.get_registered_model(PAPER).aliases
    assert (str(aliases.get("champion")) == str(registration["version"])) == registration["champion_moved"]


def test_registered_model_is_pickle_free_and_loads(smoke_repo, monkeypatch) -> None:
    import mlflow
    import numpy as np

    from components.registry import get_paper

    # set_tracking_uri also exports MLFLOW_TRACKING_URI; monkeypatch restores it for later tests
    monkeypatch.setenv("MLFLOW_TRACKING_URI", smoke_repo.env["MLFLOW_TRACKING_URI"])
    mlflow.set_tracking_uri(smoke_repo.env["MLFLOW_TRACKING_URI"])
    registration = json.loads((smoke_repo.path / "reports" / PAPER / "registration.json").read_text())
    uri = f"models:/{PAPER}/{registration['version']}"
    local = mlflow.artifacts.download_artifacts(uri)
    from pathlib import Path

    files = [p.name for p in Path(local).rglob("*") if p.is_file()]
    assert "model.safetensors" in files
    assert "input_example.json" in files, files  # the registered model carries an input example
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))], files
    model = mlflow.pyfunc.load_model(uri)
    example = get_paper(PAPER).example_input()
    out = model.predict(example)
    image = out["image"] if isinstance(out, dict) else out
    assert np.asarray(image).shape == example.shape
