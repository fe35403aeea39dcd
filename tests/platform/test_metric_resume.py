"""Checkpoints flush the MLflow buffer, and a resumed run continues one curve (real SQLite store).

The crash is simulated in-process (the killed run's logger is dropped with points flushed past its
last checkpoint, as the 200-point auto-flush does); tests/platform/test_resume.py does the same
with a real ``kill -9`` of ``paperops train``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from components.checkpoint import Checkpointer, hooked
from components.tracking.runs import MlflowLogger


def _client(tmp_path: Path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("p", artifact_location=(tmp_path / "art").as_uri())
    return client, exp


def _train(logger: MlflowLogger, ckdir: Path, stop: int, total: int = 60, every: int = 20) -> None:
    """A toy train loop: two curves with their own step counters, checkpoint every ``every``."""
    ck = Checkpointer(ckdir, "cfg")
    with hooked(ckdir, logger):
        start = int((ck.latest() or {"step": 0})["step"])
        for step in range(start + 1, min(stop, total) + 1):
            logger.log_metrics({"loss": 1.0 / step}, step=step)
            if step % 2 == 0:  # a second curve on another step unit (like ebclr's per-run epochs)
                logger.log_metrics({"other/loss": float(step)}, step=step // 2)
            if step % every == 0:
                ck.save(step, {"w": torch.zeros(1)}, {})


def test_flush_at_checkpoint_and_one_curve_across_resume(tmp_path: Path) -> None:
    client, exp = _client(tmp_path)
    ckdir = tmp_path / "checkpoints"

    first = client.create_run(exp).info.run_id
    crashed = MlflowLogger(client, first, flush_every=10_000)  # no auto-flush: only checkpoints flush
    _train(crashed, ckdir, stop=45)
    # what a kill -9 at step 45 leaves in the store: every point up to the checkpoint at step 40
    logged = {m.step for m in client.get_metric_history(first, "loss")}
    assert logged == set(range(1, 41)), "the checkpoint flushed the buffer"
    crashed.flush()  # ... and, as an auto-flush would, points past the checkpoint (41..45)

    second = client.create_run(exp).info.run_id
    _train(resumed := MlflowLogger(client, second), ckdir, stop=60)
    resumed.flush()
    loss = sorted(m.step for m in client.get_metric_history(second, "loss"))
    other = sorted(m.step for m in client.get_metric_history(second, "other/loss"))
    assert loss == list(range(1, 61)), "every step exactly once"
    assert other == list(range(1, 31))
    values = {m.step: m.value for m in client.get_metric_history(second, "loss")}
    assert all(values[s] == 1.0 / s for s in values)
    assert client.get_run(second).data.tags["paperops.resumed_from"] == f"{first} at step 40"
