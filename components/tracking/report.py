"""MLflow for the one report (``components.report``): run links in, the written report out.

``experiment_ids`` looks up, for the register runs that ``reports/<p>/registration.json`` names,
the experiment each belongs to (for a link into the MLflow UI). ``log_report`` logs the written
report (HTML, markdown, figures) as the artifacts of one run in the experiment ``paperops-report``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from mlflow.exceptions import MlflowException

from components.tracking.runs import EXPERIMENT_KIND, configure, tracking_uri
from components.tracking.store import sqlite_path

log = logging.getLogger(__name__)
REPORT_EXPERIMENT = "paperops-report"


def _no_store(root: Path) -> bool:
    """A SQLite store that does not exist yet: reading it must not create it."""
    path = sqlite_path(tracking_uri(root))
    return path is not None and not path.is_file()


def experiment_ids(root: Path, run_ids: Iterable[str]) -> dict[str, str]:
    """``{run_id: experiment_id}`` for the runs the store holds (others are left out)."""
    wanted = [r for r in dict.fromkeys(run_ids) if r]
    if not wanted or _no_store(root):
        return {}
    client = configure(root)
    found = {}
    for run_id in wanted:
        try:
            found[run_id] = client.get_run(run_id).info.experiment_id
        except MlflowException:  # a run of another store (the report names it without a link)
            log.info("run %s not in %s", run_id, tracking_uri(root))
    return found


def log_report(root: Path, out: Path, files: Iterable[Path], tags: dict[str, str]) -> tuple[str, str]:
    """Log ``files`` (paths under ``out``, kept relative to it) as one run of ``paperops-report``.

    Returns:
        ``(experiment_id, run_id)`` of the new run.
    """
    client = configure(root)
    exp = client.get_experiment_by_name(REPORT_EXPERIMENT)
    if exp is None:
        location = None
        if tracking_uri(root).startswith("sqlite:"):
            location = (Path(root) / "mlartifacts" / REPORT_EXPERIMENT).resolve().as_uri()
        try:
            exp_id = client.create_experiment(
                REPORT_EXPERIMENT, artifact_location=location, tags=dict([EXPERIMENT_KIND])
            )
        except MlflowException:  # created meanwhile by another process
            found = client.get_experiment_by_name(REPORT_EXPERIMENT)
            assert found is not None
            exp_id = found.experiment_id
    else:
        exp_id = exp.experiment_id
    run = client.create_run(exp_id, run_name="report", tags=tags)
    status = "FAILED"
    try:
        for path in files:
            rel = Path(path).resolve().relative_to(Path(out).resolve())
            parent = str(rel.parent) if str(rel.parent) != "." else None
            client.log_artifact(run.info.run_id, str(path), artifact_path=parent)
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status=status)
    return exp_id, run.info.run_id
