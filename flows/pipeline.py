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
import os
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

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
        ``{"stage": "train@<paper>", "ran": bool}``: ``ran`` is False when DVC found the
        stage up to date and skipped it. A retry after a crash resumes from the checkpoint.
    """
    from dvc.repo import Repo

    _env_for_dvc()
    target = f"{stage}@{paper}"
    # DVC resolves targets and runs stage commands relative to the working directory, so work
    # from the checkout's root (tasks of one flow run one after another, never in parallel).
    with contextlib.chdir(root), Repo(root) as repo:
        ran = repo.reproduce(targets=[target], single_item=True)
    get_run_logger().info("%s: %s", target, "ran" if ran else "up to date, skipped")
    return {"stage": target, "ran": bool(ran)}


def _publish_report(paper: str, root: Path) -> None:
    """Put the paper's result table and registration into the Prefect UI as an artifact."""
    report = root / "reports" / paper
    parts = [f"# {paper}"]
    if (report / "results.md").is_file():
        parts.append((report / "results.md").read_text())
    if (report / "registration.json").is_file():
        reg = json.loads((report / "registration.json").read_text())
        parts.append(f"Registered version **{reg['version']}**, champion: **{reg['champion']}**")
    key = "".join(c if c.isalnum() else "-" for c in paper.lower())
    create_markdown_artifact("\n\n".join(parts), key=f"{key}-report", description=f"{paper} results")


@flow(name="paper-pipeline", flow_run_name="{paper}", log_prints=True)
def paper_pipeline(paper: str, root: str = ".") -> list[dict[str, Any]]:
    """validate -> prepare -> train -> evaluate -> register for one paper, one task per DVC stage."""
    root_path = Path(root).resolve()
    results = []
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
    return {paper: paper_pipeline(paper, str(root_path)) for paper in papers}
