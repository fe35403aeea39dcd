"""The Prefect task that ends the all-papers flow: one report, published twice.

It writes ``reports/index.html`` and ``reports/REPORT.md`` (``components.report``), puts the
markdown into the Prefect UI as the artifact ``paperops-report`` and logs the pages and figures as
one MLflow run in the experiment ``paperops-report``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

ARTIFACT_KEY = "paperops-report"


def artifact_text(markdown: str) -> str:
    """REPORT.md without its image lines (relative paths the Prefect UI would show broken)."""
    return "\n".join(line for line in markdown.splitlines() if not line.startswith("![")) + "\n"


@task(name="report", task_run_name="report")
def report(root: str, mlflow_ui: str | None = None) -> dict[str, Any]:
    """Write the report of every paper in params.yaml and publish it (Prefect artifact, MLflow run).

    Returns:
        ``{"html": path, "markdown": path, "experiment_id": ..., "run_id": ..., "artifact_id": ...}``.
    """
    from components.report import mlflow_ui_base, publish, write_report

    log = get_run_logger()
    base = mlflow_ui_base(mlflow_ui)
    written = write_report(Path(root), mlflow_ui=base)
    experiment_id, run_id = publish(written, Path(root))
    head = (
        f"Written to `{written.html}` and `{written.markdown}`: open index.html in a browser for the figures "
        f"(they are relative files, which the Prefect UI cannot show). Logged to MLflow with its figures: "
        f"[run {run_id}]({base}/#/experiments/{experiment_id}/runs/{run_id}) in the experiment `paperops-report`.\n\n"
    )
    text = artifact_text(written.markdown.read_text())
    artifact_id = create_markdown_artifact(
        head + text, key=ARTIFACT_KEY, description="paperops: one report of every paper"
    )
    log.info("report: %s (MLflow run %s)", written.html, run_id)
    return {
        "html": str(written.html),
        "markdown": str(written.markdown),
        "experiment_id": experiment_id,
        "run_id": run_id,
        "artifact_id": str(artifact_id),
    }
