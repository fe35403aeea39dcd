"""Prefect flows over the DVC pipeline defined in dvc.yaml.

Each task reproduces exactly one DVC stage (``train@<paper>``) through DVC's API, so the DVC
cache, dvc.lock and the remote stay the truth: a stage whose inputs did not change is skipped by
DVC, as under ``dvc repro``. Prefect adds what DVC lacks: schedules (prefect.yaml), retries,
logs, artifacts in the UI. Without ``PREFECT_API_URL`` the flows run in Prefect's ephemeral mode
(no server needed); with a server they show up in its UI.

DVC allows one reproduction per checkout at a time, so ``all_papers`` runs the papers one after
another in one checkout; ``all_papers(parallel=True)`` (flows/scaleout.py) runs each paper in its
own checkout on a Dask task runner and merges the results back.

A paper that fails does not stop the others: ``all_papers`` runs the rest, then ends Failed with a
message naming each failed paper, its stage and the error (the flow run's page in the UI).
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
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.states import Completed, Failed, State

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


class StageFailed(RuntimeError):
    """A paper's DVC stage failed (after its retry): names the paper, the stage and the error."""

    def __init__(self, paper: str, stage: str, error: BaseException | str) -> None:
        self.paper, self.stage = paper, stage
        self.error = error if isinstance(error, str) else describe(error)
        super().__init__(f"{paper}: {stage} failed: {self.error}")

    def __reduce__(self) -> tuple[Any, ...]:  # pickled across Dask workers and Prefect results
        return (StageFailed, (self.paper, self.stage, self.error))


def describe(error: BaseException, limit: int = 400) -> str:
    """One line for an exception and its causes (DVC's ReproductionError says only "failed to
    reproduce"; its cause says which command failed with which exit code)."""
    parts: list[str] = []
    seen: BaseException | None = error
    while seen is not None and len(parts) < 4:
        text = (
            f"{type(seen).__name__}: {str(seen).strip()}".splitlines()[0] if str(seen).strip() else type(seen).__name__
        )
        if text not in parts:
            parts.append(text)
        seen = seen.__cause__ or seen.__context__
    line = " <- ".join(parts)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def paper_targets(paper: str) -> list[tuple[str, str]]:
    """(stage, item) in the order the paper runs them: its blocks' builds, then its stages."""
    return [("build-block", block) for block in blocks_of(paper)] + [(stage, paper) for stage in STAGES]


def run_stages(paper: str, root: str, targets: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Run the paper's stages as tasks in order; the first that fails (after its retry) raises
    StageFailed naming it."""
    results = []
    for stage, item in paper_targets(paper) if targets is None else targets:
        try:
            results.append(dvc_stage(stage, item, root))
        except Exception as exc:
            raise StageFailed(paper, f"{stage}@{item}", exc) from exc
    return results


@flow(name="paper-pipeline", flow_run_name="{paper}", log_prints=True)
def paper_pipeline(paper: str, root: str = ".", share: bool = False) -> list[dict[str, Any]]:
    """[build-block@<b> for the paper's blocks ->] validate -> prepare -> train -> evaluate -> register,
    one task per DVC stage.

    ``share`` (a worker's throw-away clone, README "Scale-out"): first pull what the shared DVC
    remote already holds for the paper, and at the end push its outputs to that remote and its
    dvc.lock entries and uncached reports to a git branch ``results/<paper>/<flow run>`` of origin.
    """
    root_path = Path(root).resolve()
    if share:
        from flows.scaleout import pull_shared

        pull_shared(paper, root_path)
    # the blocks are built (or found up to date) before the paper's validate records them
    results = run_stages(paper, str(root_path))
    _publish_report(paper, root_path)
    if share:
        from flows.scaleout import push_shared

        push_shared(paper, root_path)
    return results


def status_table(papers: list[str], status: dict[str, str]) -> str:
    """The all-papers progress table (markdown): one row per paper with its state so far."""
    rows = ["| paper | state |", "|---|---|"]
    cell = {paper: status.get(paper, "pending").replace("|", "\\|").replace("\n", " ") for paper in papers}
    rows += [f"| {paper} | {cell[paper]} |" for paper in papers]
    return "\n".join(rows)


class Progress:
    """Per-paper progress in the Prefect UI: a progress artifact (percent of papers finished) and a
    markdown table (key ``all-papers-status``, a new version each time a paper finishes)."""

    def __init__(self, papers: list[str]) -> None:
        self.papers = papers
        self.status: dict[str, str] = {}
        self.progress_id = create_progress_artifact(0.0, key="all-papers-progress", description="papers finished")
        self._table()

    def _table(self) -> None:
        create_markdown_artifact(
            status_table(self.papers, self.status), key="all-papers-status", description="per-paper state"
        )

    def update(self, paper: str, state: str) -> None:
        self.status[paper] = state
        done = sum(1 for s in self.status.values() if s != "running")
        update_progress_artifact(self.progress_id, 100.0 * done / len(self.papers))
        self._table()


def final_state(results: dict[str, Any], failures: dict[str, StageFailed]) -> State:
    """Completed when every paper passed; else Failed, its message naming each failed paper, the
    stage and the error (the flow run's page shows it)."""
    if not failures:
        return Completed(message=f"{len(results)} papers completed", data=results)
    lines = [f"{paper}: {f.stage} failed: {f.error}" for paper, f in failures.items()]
    ok = len(results) - len(failures)
    message = f"{len(failures)} of {len(results)} papers failed ({ok} completed): " + "; ".join(lines)
    return Failed(message=message)


def _as_failure(paper: str, error: BaseException) -> StageFailed:
    return error if isinstance(error, StageFailed) else StageFailed(paper, "flow", error)


@flow(name="all-papers", log_prints=True)
def all_papers(
    root: str = ".",
    papers: list[str] | None = None,
    parallel: bool = False,
    dask_address: str | None = None,
    workers: int = 2,
) -> State:
    """Every paper listed in params.yaml (or ``papers``), one after another as subflows; with
    ``parallel`` each in its own checkout on a Dask task runner (flows/scaleout.py: a cluster at
    ``dask_address``, else a local one with ``workers`` processes).

    A failed paper does not stop the others; the flow then ends Failed naming each failure. Last,
    the report of every paper is written and published (flows/report.py).
    """
    from components.config import load_params

    log = get_run_logger()
    root_path = Path(root).resolve()
    names = list(papers) if papers else list(load_params(root_path / "params.yaml").papers)
    progress = Progress(names)
    results: dict[str, Any] = {}
    failures: dict[str, StageFailed] = {}
    if parallel:
        from flows.scaleout import run_parallel

        results, failures = run_parallel(names, root_path, progress, dask_address, workers)
    else:
        for paper in names:
            progress.update(paper, "running")
            state = paper_pipeline(paper, str(root_path), return_state=True)
            outcome = state.result(raise_on_failure=False)
            if isinstance(outcome, BaseException) or not state.is_completed():
                failure = _as_failure(
                    paper, outcome if isinstance(outcome, BaseException) else RuntimeError(str(state))
                )
                failures[paper] = failure
                results[paper] = {"failed": failure.stage, "error": failure.error}
                progress.update(paper, f"failed at {failure.stage}: {failure.error}")
                log.error("%s", failure)
            else:
                results[paper] = outcome
                ran = [r["stage"] for r in outcome if r["ran"]]
                progress.update(paper, f"completed ({len(ran)} stages ran)")
    state = final_state(results, failures)
    # One report of every paper (reports/index.html, REPORT.md; a Prefect artifact and an MLflow run
    # `paperops-report`), written after failed papers too: their sections say what is missing.
    written = report(str(root_path), return_state=True)
    if not written.is_completed():
        error = written.result(raise_on_failure=False)
        why = f"the report was not written: {describe(error) if isinstance(error, BaseException) else error}"
        log.error("%s", why)
        return Failed(message=f"{state.message}; {why}" if state.is_failed() else why)
    return state
