"""Kill -9 in the middle of training, rerun: it resumes and ends where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from tests.project_copy import copy_project

pytestmark = pytest.mark.e2e

PAPER = "noise2score"
STEPS, EVERY = 120, 10  # long enough on 2 cores to be killed between two checkpoints


def _project(tmp: Path):
    project = copy_project(tmp)
    params = yaml.safe_load((project.path / "params.yaml").read_text())
    smoke = params[PAPER].setdefault("smoke", {}) or {}
    smoke.setdefault("train", {}).update(steps=STEPS, checkpoint_every=EVERY)
    params[PAPER]["smoke"] = smoke
    (project.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    project.run("paperops", "prepare", PAPER)
    return project


def _checkpoint_steps(project) -> list[int]:
    folder = project.path / "models" / PAPER / "checkpoints"
    return sorted(int(p.stem.split("-")[1]) for p in folder.glob("step-*.pt")) if folder.is_dir() else []


def _weights(project) -> dict:
    return load_file(str(project.path / "models" / PAPER / "model" / "model.safetensors"))


def test_kill_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    crashed = _project(tmp_path / "a")
    proc = subprocess.Popen(
        ["paperops", "train", PAPER],
        cwd=crashed.path,
        env=crashed.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        done = _checkpoint_steps(crashed)
        if done and EVERY * 2 <= done[-1] < STEPS:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed: raise STEPS"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _checkpoint_steps(crashed)[-1]
    assert not (crashed.path / "models" / PAPER / "model").exists(), "no export from a killed run"

    resumed = crashed.run("paperops", "train", PAPER, timeout=1800)  # 2 shared cores can be slow
    assert "resum" in (resumed.stdout + resumed.stderr).lower()
    assert f"{killed_at}" in resumed.stdout + resumed.stderr

    # the killed run's MLflow record does not stay RUNNING forever: the rerun closed it as KILLED
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=crashed.env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name(PAPER).experiment_id], "tags.`paperops.stage` = 'train'")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
    assert any("paperops.orphaned" in r.data.tags for r in runs if r.info.status == "KILLED")

    straight = _project(tmp_path / "b")
    straight.run("paperops", "train", PAPER, timeout=1800)
    a, b = _weights(crashed), _weights(straight)
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), f"{key} differs after resume"

    # one loss curve across the kill: the resumed run holds every logged step exactly once, the
    # same points as the uninterrupted run (the part before the checkpoint copied from the killed run)
    resumed_run = next(r for r in runs if r.info.status == "FINISHED")
    assert resumed_run.data.tags["paperops.resumed_from"].endswith(f"at step {killed_at}")
    curves = _loss_curves(client, resumed_run.info.run_id)
    straight_client = MlflowClient(tracking_uri=straight.env["MLFLOW_TRACKING_URI"])
    (straight_run,) = straight_client.search_runs(
        [straight_client.get_experiment_by_name(PAPER).experiment_id], "tags.`paperops.stage` = 'train'"
    )
    expected = _loss_curves(straight_client, straight_run.info.run_id)
    assert expected and curves.keys() == expected.keys()
    for key, points in curves.items():
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), f"{key}: a step logged twice across the resume"
        assert points == expected[key], f"{key}: the resumed curve differs from the uninterrupted one"
    assert any(step <= killed_at for pts in curves.values() for step, _ in pts), "the part before the kill is kept"


def _loss_curves(client, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(step, value), ...]}`` of a train run's loss metrics, in step order."""
    run = client.get_run(run_id)
    keys = [k for k in run.data.metrics if k.startswith("loss/")]
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys}
