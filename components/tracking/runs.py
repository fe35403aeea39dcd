"""MLflow runs: one experiment per paper, one run per stage, buffered metric logging.

The store defaults to a local SQLite file (``mlflow.db``) and artifacts under ``mlartifacts/`` at
the project root, and moves with the checkout (``components.tracking.store``);
``MLFLOW_TRACKING_URI`` points it anywhere else (a team server, say). ``PAPEROPS_ARTIFACT_ROOT``
(e.g. ``s3://bucket/paperops``) puts the artifacts of newly created experiments at
``<root>/<paper>`` instead, on any store whose client creates the experiment (a SQLite file; a
server that proxies artifacts needs nothing on the client: ``mlflow server --artifacts-destination``).

A stage run is named ``<paper>/<stage>/<scale>`` (e.g. ``<paper>/train/default``) and nests under
the parent run of its pipeline when its stages run together (``components.tracking.pipeline``).
Experiments are marked as model development (``mlflow.experimentKind``), so MLflow 3's UI opens
them on their runs rather than on its GenAI pages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from components.gitstate import checkout_state
from components.tracking.pipeline import PIPELINE_STAGE, finish_parent, parent_run, pipeline_key
from components.tracking.store import relocate

log = logging.getLogger(__name__)

# MLflow caps one log_batch call at 1000 metrics and 100 params.
_METRIC_BATCH = 1000
_PARAM_BATCH = 100
_PARAM_VALUE_MAX = 6000


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<root>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(root) / 'mlflow.db').resolve()}"


def configure(root: Path) -> MlflowClient:
    """Point MLflow at the project's store (idempotent) and return a client.

    A store file inside the checkout whose artifact locations name another place (the checkout
    was moved or copied) is first pointed at this one (``store.relocate``).
    """
    uri = tracking_uri(root)
    relocate(Path(root), uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# MLflow 3's UI reads this experiment tag to show an experiment as model development (runs,
# metrics, models) instead of a GenAI app (traces); see README "MLflow".
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


ARTIFACT_ROOT = "PAPEROPS_ARTIFACT_ROOT"


def artifact_location(root: Path, paper: str) -> str | None:
    """Where a new experiment of ``paper`` keeps its artifacts (None: the tracking server decides).

    ``PAPEROPS_ARTIFACT_ROOT`` when set: ``<it>/<paper>`` (any URI MLflow writes to, e.g.
    ``s3://bucket/paperops``; a plain path is made absolute). Else, for a SQLite store,
    ``<root>/mlartifacts/<paper>``; else None, so a server uses its own artifact root (or proxy).
    """
    if base := os.environ.get(ARTIFACT_ROOT, "").strip():
        if "://" not in base and not base.startswith("file:"):
            base = Path(base).resolve().as_uri()
        return f"{base.rstrip('/')}/{paper}"
    if tracking_uri(root).startswith("sqlite:"):
        return (Path(root) / "mlartifacts" / paper).resolve().as_uri()
    return None


def ensure_experiment(client: MlflowClient, paper: str, root: Path) -> str:
    """The experiment named after the paper, created with artifacts at :func:`artifact_location`.

    An existing experiment keeps its location (MLflow cannot move one): a ``PAPEROPS_ARTIFACT_ROOT``
    it is not under is reported, not applied.
    """
    location = artifact_location(root, paper)
    exp = client.get_experiment_by_name(paper)
    if exp is not None:
        if EXPERIMENT_KIND[0] not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
        if os.environ.get(ARTIFACT_ROOT) and location != exp.artifact_location:
            log.warning(
                "experiment %r keeps its artifacts at %s, not %s (%s applies to new experiments only: "
                "use a new store, or delete the experiment)",
                paper,
                exp.artifact_location,
                location,
                ARTIFACT_ROOT,
            )
        return exp.experiment_id
    try:
        return client.create_experiment(paper, artifact_location=location, tags=dict([EXPERIMENT_KIND]))
    except mlflow.exceptions.MlflowException:  # created meanwhile by a concurrent stage
        exp = client.get_experiment_by_name(paper)
        assert exp is not None  # the concurrent stage created it
        return exp.experiment_id


def _dvc_data_hash(root: Path, paper: str) -> str | None:
    """The md5 DVC recorded for ``data/<paper>`` in dvc.lock (None before the first repro)."""
    lock = Path(root) / "dvc.lock"
    if not lock.is_file():
        return None
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    except yaml.YAMLError:
        return None
    for out in stages.get(f"prepare@{paper}", {}).get("outs", []):
        if out.get("path") == f"data/{paper}":
            return out.get("md5")
    return None


def provenance_tags(root: Path, paper: str, stage: str, scale: str) -> dict[str, str]:
    """Tags every stage run carries: stage, scale, git commit (and dirtiness), DVC data hash, and the
    DVC experiment's name when it runs in one."""
    tags = {
        "paperops.paper": paper,
        "paperops.stage": stage,
        "paperops.scale": scale,
        "paperops.host": socket.gethostname(),
        "paperops.pid": str(os.getpid()),
    }
    commit, changed = checkout_state(root)
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["paperops.git_dirty"] = str(bool(changed))
    data_hash = _dvc_data_hash(root, paper)
    if data_hash:
        tags["dvc.data_md5"] = data_hash
    if os.environ.get("DVC_EXP_NAME"):  # set by `dvc exp run` for its stage commands
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


class MlflowLogger:
    """The ``MetricLogger`` of a stage run: buffers metrics and writes them in batches.

    One synchronous call per point costs ~2.3 ms on SQLite; ``log_batch`` ~0.05 ms a point.
    It is also the ``CheckpointHook`` of the stage (``components.checkpoint.hooked``): every
    checkpoint flushes the buffer and records, per metric, the last step logged; a resumed run
    first copies the earlier run's points up to those steps, so one run holds the whole curve,
    every step exactly once, whatever point the kill came at.
    """

    def __init__(
        self, client: MlflowClient, run_id: str, flush_every: int = 200, parent_run_id: str | None = None
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.parent_run_id = parent_run_id
        self.flush_every = flush_every
        self._buffer: list[Metric] = []
        self._last_step: dict[str, int] = {}
        self._resumed = False

    def log_params(self, params: dict[str, Any]) -> None:
        items = [Param(k, str(v)[:_PARAM_VALUE_MAX]) for k, v in params.items()]
        for i in range(0, len(items), _PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _PARAM_BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), now, step or 0) for k, v in metrics.items())
        for k in metrics:
            self._last_step[k] = max(self._last_step.get(k, step or 0), step or 0)
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write every buffered point to the store now."""
        while self._buffer:
            chunk, self._buffer = self._buffer[:_METRIC_BATCH], self._buffer[_METRIC_BATCH:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def before_save(self, step: int) -> dict[str, Any]:
        """A checkpoint at ``step`` is about to be written: flush, say what this run holds."""
        self.flush()
        return {"run_id": self.run_id, "steps": dict(self._last_step)}

    def after_resume(self, step: int, stored: dict[str, Any]) -> None:
        """Training resumes at ``step``: copy the points the checkpoint's run had logged by then.

        The checkpoint stores, per metric, the last step its run had logged (and flushed) when it
        was written; steps grow along a curve, so exactly those points are the ones with a step
        up to it. Points the killed run logged after the checkpoint are left behind: training
        logs them again from here.
        """
        source, steps = stored.get("run_id"), stored.get("steps") or {}
        if self._resumed or not source or source == self.run_id:
            return
        self._resumed = True
        copied: list[Metric] = []
        try:
            for key, last in steps.items():
                copied += [
                    Metric(key, m.value, m.timestamp, m.step)
                    for m in self.client.get_metric_history(source, key)
                    if m.step <= int(last)
                ]
        except MlflowException as exc:  # the earlier run was deleted, or another store
            log.warning(
                "resumed at step %d; the earlier run %s is not readable (%s): its curve starts here", step, source, exc
            )
            return
        copied.sort(key=lambda m: (m.key, m.step, m.timestamp))
        for i in range(0, len(copied), _METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=copied[i : i + _METRIC_BATCH])
        for key, last in steps.items():
            self._last_step[key] = max(self._last_step.get(key, int(last)), int(last))
        self.client.set_tag(self.run_id, "paperops.resumed_from", f"{source} at step {step}")
        log.info("resumed at step %d: copied %d metric points of run %s", step, len(copied), source)

    def log_summary(self, metrics: dict[str, float], tags: dict[str, str] | None = None) -> None:
        """Headline metrics and tags on the pipeline's parent run too (the row the UI lists first)."""
        if self.parent_run_id is None:
            return
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.parent_run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in (tags or {}).items()],
        )

    def log_figure(self, figure: Any, name: str) -> None:
        import matplotlib.pyplot as plt

        self.client.log_figure(self.run_id, figure, f"figures/{name}")
        plt.close(figure)

    def log_table(self, table: Any, name: str) -> None:
        self.client.log_table(self.run_id, data=table, artifact_file=f"tables/{name}")

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def close_orphaned_runs(client: MlflowClient, experiment_id: str, stage: str) -> list[str]:
    """Mark KILLED the RUNNING runs of ``stage`` whose process on this host is gone (a ``kill -9``, a
    power cut), so the UI does not show them running forever. Runs of other hosts are left alone.

    Returns:
        the ids of the runs closed.
    """
    host = socket.gethostname()
    closed = []
    running = f"tags.`paperops.stage` = '{stage}' and attributes.status = 'RUNNING'"
    for run in client.search_runs([experiment_id], filter_string=running):
        tags = run.data.tags
        if tags.get("paperops.host") != host or not tags.get("paperops.pid", "").isdigit():
            continue
        if _pid_alive(int(tags["paperops.pid"])):
            continue
        client.set_tag(run.info.run_id, "paperops.orphaned", "process gone; closed by a later run of the stage")
        client.set_terminated(run.info.run_id, status="KILLED")
        closed.append(run.info.run_id)
    if closed:
        log.warning("closed %d orphaned %s run(s) as KILLED: %s", len(closed), stage, ", ".join(closed))
    return closed


def run_name(paper: str, stage: str, scale: str) -> str:
    """``<paper>/<stage>/<scale>``: how a stage run is listed in the UI."""
    return f"{paper}/{stage}/{scale}"


@contextlib.contextmanager
def stage_run(root: Path, paper: str, stage: str, scale: str, params: dict[str, Any]) -> Iterator[MlflowLogger]:
    """Open the MLflow run of one stage, yield its logger, close it FINISHED or FAILED.

    The run nests under its pipeline's parent run when the stage runs as part of one
    (``components.tracking.pipeline``). Buffered metrics are flushed even when the stage raises,
    so a crash loses nothing logged.
    """
    client = configure(root)
    experiment_id = ensure_experiment(client, paper, root)
    close_orphaned_runs(client, experiment_id, stage)
    close_orphaned_runs(client, experiment_id, PIPELINE_STAGE)
    tags = provenance_tags(root, paper, stage, scale)
    key = pipeline_key()
    parent = parent_run(client, experiment_id, key, paper, scale, tags) if key else None
    if key:
        tags["paperops.pipeline"] = key
    mlflow.set_system_metrics_sampling_interval(float(os.environ.get("PAPEROPS_SYSMETRICS_S", "2")))
    run = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name(paper, stage, scale),
        tags=tags,
        parent_run_id=parent,
        log_system_metrics=True,
    )
    logger = MlflowLogger(client, run.info.run_id, parent_run_id=parent)
    logger.log_params(params)
    status = "FAILED"
    try:
        yield logger
        status = "FINISHED"
    finally:
        try:
            logger.flush()
        finally:
            mlflow.end_run(status=status)
            if parent:
                finish_parent(client, parent, status)
