"""Prefect flows over the DVC pipeline defined in dvc.yaml.

Each task reproduces exactly one DVC stage (``train@<paper>``) through DVC's API, so the DVC
cache, dvc.lock and the remote stay the truth: a stage whose inputs did not change is skipped by
DVC, as under ``dvc repro``. Prefect adds what DVC lacks: schedules (prefect.yaml), retries,
logs, artifacts in the UI. Without ``PREFECT_API_URL`` the flows run in Prefect's ephemeral mode
(no server needed); with a server they show up in its UI.

DVC allows one reproduction per checkout at a time, so the papers run one after another here;
parallel runs need several checkouts (workers) sharing a DVC remote and an MLflow server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.report import report

# validate first: DVC deletes a stage's outputs before running it, so an invalid params.yaml must
# stop the flow at validate@<paper>, which deletes nothing (see dvc.yaml).
STAGES = ("validate", "prepare", "train", "evaluate", "register")


def _env_for_dvc() -> None:
    """Make the `paperops` console script of this interpreter visible to DVC's stage commands."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@task(task_run_name="{stage}@{paper}", retries=1, retry_delay_seconds=5)
def dvc_stage(stage: str, paper: str, root: str) -> dict[str, Any]:
    """Reproduce the DVC stage ``<stage>@<paper>`` alone (its upstream already ran).

    Returns:
        ``{"stage": "train@<paper>", "ran": bool, "outcome": "ran" | "restored" | "skipped"}``:
        ``ran`` is True only when DVC executed the stage's command. A retry after a crash resumes from the checkpoint.
    """
    from dvc.repo import Repo

    _env_for_dvc()
    target = f"{stage}@{paper}"
    # DVC resolves targets and runs stage commands relative to the working directory, so work
    # from the checkout's root (tasks of one flow run one after another, never in parallel).
    # DVC's own lines go to the task's log once: through this handler only (not propagated to
    # the root handlers as well, which printed every line twice).
    log = get_run_logger()
    watch = _DvcOutcome(log)
    dvc_logger = logging.getLogger("dvc")
    saved = dvc_logger.level, dvc_logger.propagate, dvc_logger.handlers[:]
    dvc_logger.handlers[:] = [watch]
    dvc_logger.setLevel(logging.INFO)
    dvc_logger.propagate = False
    try:
        with contextlib.chdir(root), Repo(root) as repo:
            reproduced = repo.reproduce(targets=[target], single_item=True)
    finally:
        dvc_logger.setLevel(saved[0])
        dvc_logger.propagate = saved[1]
        dvc_logger.handlers[:] = saved[2]
    outcome = watch.outcome(bool(reproduced))
    log.info("%s: %s", target, OUTCOMES[outcome])
    return {"stage": target, "ran": outcome == "ran", "outcome": outcome}


OUTCOMES = {
    "ran": "ran (DVC executed the stage command)",
    "restored": "restored from DVC's run cache (same inputs ran before; command not executed)",
    "skipped": "up to date, skipped",
}


class _DvcOutcome(logging.Handler):
    """Tells what DVC did with a stage from its own log records: ``Running stage`` (stage/run.py)
    or ``is cached - skipping run`` (stage/cache.py). ``reproduce`` returns the stage in both
    cases, so its return value alone would log a run-cache restore as "ran"."""

    def __init__(self, forward: Any) -> None:
        super().__init__(logging.INFO)
        self.forward = forward
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().strip()
        self.messages.append(message)
        if message:
            self.forward.log(record.levelno, "dvc: %s", message)

    def outcome(self, reproduced: bool) -> str:
        if any("is cached - skipping run" in m for m in self.messages):
            return "restored"
        if any(m.startswith("Running stage") for m in self.messages):
            return "ran"
        return "ran" if reproduced else "skipped"


def _publish_report(paper: str, root: Path) -> None:
    """Put the paper's result table and registration into the Prefect UI as an artifact."""
    report = root / "reports" / paper
    parts = [f"# {paper}"]
    if (report / "results.md").is_file():
        parts.append((report / "results.md").read_text())
    if (report / "registration.json").is_file():
        reg = json.loads((report / "registration.json").read_text())
        parts.append(
            f"Registered version **{reg['version']}**, gate passed: **{reg['gate_passed']}**, "
            f"champion moved: **{reg['champion_moved']}**"
        )
    key = "".join(c if c.isalnum() else "-" for c in paper.lower())
    create_markdown_artifact("\n\n".join(parts), key=f"{key}-report", description=f"{paper} results")


def blocks_of(paper: str) -> tuple[str, ...]:
    """The trained shared blocks the paper reads (its config model's ``USES_BLOCKS``)."""
    from components.registry import config_model

    return tuple(config_model(paper).USES_BLOCKS)


@flow(name="paper-pipeline", flow_run_name="{paper}", log_prints=True)
def paper_pipeline(paper: str, root: str = ".") -> list[dict[str, Any]]:
    """[build-block@<b> for the paper's blocks ->] validate -> prepare -> train -> evaluate -> register,
    one task per DVC stage."""
    root_path = Path(root).resolve()
    results = []
    for block in blocks_of(paper):  # built (or found up to date) before the paper's validate records it
        results.append(dvc_stage("build-block", block, str(root_path)))
    for stage in STAGES:
        results.append(dvc_stage(stage, paper, str(root_path)))
    _publish_report(paper, root_path)
    return results


@flow(name="all-papers", log_prints=True)
def all_papers(root: str = ".") -> dict[str, list[dict[str, Any]]]:
    """Every paper listed in params.yaml, one subflow each, in order."""
    from components.config import load_params

    root_path = Path(root).resolve()
    papers = load_params(root_path / "params.yaml").papers
    results = {paper: paper_pipeline(paper, str(root_path)) for paper in papers}
    report(str(root_path))  # reports/index.html + REPORT.md; Prefect artifact and MLflow run `paperops-report`
    return results
