"""One report for every paper: ``reports/index.html`` and ``reports/REPORT.md``.

``write_report(root)`` reads what the pipeline left in a checkout (reports/<p>/, dvc.lock, git, the
MLflow store) and the per-paper claims of ``claims.yaml`` (the one file a new paper adds its line
to), draws one overview figure and writes both pages. Figures of the papers are linked where they
are (``reports/<p>/figures/*.png``); with ``out`` elsewhere they are copied beside the pages, so the
folder is self-contained either way. ``paperops report`` and ``make report`` call it; the all-papers
Prefect flow calls it and publishes the result (``publish``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from components.report.collect import (
    CLAIMS,
    DEFAULT_MLFLOW_UI,
    PaperEntry,
    Provenance,
    load_claims,
    lock_hashes,
    paper_entry,
    provenance,
)

__all__ = ["CLAIMS", "DEFAULT_MLFLOW_UI", "PaperEntry", "Report", "mlflow_ui_base", "publish", "write_report"]


@dataclass(frozen=True)
class Report:
    """A written report: its folder, pages, figures and what they say."""

    out: Path
    html: Path
    markdown: Path
    figures: tuple[Path, ...]  # every image the pages show, under ``out``
    entries: tuple[PaperEntry, ...]
    provenance: Provenance

    def files(self) -> list[Path]:
        return [self.html, self.markdown, *self.figures]


def mlflow_ui_base(value: str | None = None) -> str:
    """The MLflow UI the run links point at: ``value``, else ``PAPEROPS_MLFLOW_UI``, else the
    address `make mlflow-ui` serves. Only http(s) URLs (a link must not run anything)."""
    base = value or os.environ.get("PAPEROPS_MLFLOW_UI") or DEFAULT_MLFLOW_UI
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"MLflow UI address must be an http(s) URL, got {base!r}")
    return base.rstrip("/")


def _meta(paper: str) -> tuple[str | None, str | None]:
    """The paper's title and arXiv id, read from the ``PAPER = Paper(...)`` of its package without
    importing it (importing all ten costs seconds of torch, diffusers and open_clip)."""
    import ast

    import components
    from components.registry import PAPERS

    module = PAPERS.get(paper)
    if module is None:
        return None, None
    init = Path(components.__file__).parent.parent.joinpath(*module.split("."), "__init__.py")
    try:
        tree = ast.parse(init.read_text())
    except (OSError, SyntaxError):
        return None, None
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Paper":
            for kw in node.keywords:
                if kw.arg in ("title", "arxiv") and isinstance(kw.value, ast.Constant):
                    found[kw.arg] = str(kw.value.value)
    return found.get("title"), found.get("arxiv")


def write_report(
    root: Path,
    out: Path | None = None,
    papers: list[str] | None = None,
    mlflow_ui: str | None = None,
    claims_path: Path = CLAIMS,
) -> Report:
    """Write ``index.html``, ``REPORT.md`` and ``figures/overview.png`` under ``out`` (default
    ``<root>/reports``) for ``papers`` (default: params.yaml's ``papers:``, in its order)."""
    from components import tracking
    from components.report.figure import overview
    from components.report.render import OVERVIEW, html, markdown
    from components.tracking.report import experiment_ids

    root = Path(root).resolve()
    reports = root / "reports"
    out = Path(out).resolve() if out else reports
    base = mlflow_ui_base(mlflow_ui)
    if papers is None:
        from components.config import load_params

        papers = list(load_params(root / "params.yaml").papers)
    claims = load_claims(claims_path)
    locks = lock_hashes(root)
    run_ids = []
    for paper in papers:
        reg = reports / paper / "registration.json"
        if reg.is_file():
            import json

            run_ids.append(str(json.loads(reg.read_text()).get("run_id") or ""))
    exp_ids = experiment_ids(root, run_ids)
    entries = tuple(paper_entry(root, p, claims, locks, exp_ids, base, _meta(p)) for p in papers)
    prov = provenance(root, tracking.tracking_uri(root), base)

    out.mkdir(parents=True, exist_ok=True)
    figures = [overview(entries, out / OVERVIEW)]
    for entry in entries:
        for rel in entry.figures:
            target = out / rel
            if out != reports:  # keep the folder self-contained: copy the paper's figures beside it
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(reports / rel, target)
            figures.append(target)
        if out != reports:
            for rel in entry.files:
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(reports / rel, out / rel)
    shown = {str(f.relative_to(out)) for f in figures if f.is_file()}
    html_path, md_path = out / "index.html", out / "REPORT.md"
    html_path.write_text(html(entries, prov, shown))
    md_path.write_text(markdown(entries, prov, shown))
    return Report(out, html_path, md_path, tuple(f for f in figures if f.is_file()), entries, prov)


def publish(report: Report, root: Path) -> tuple[str, str]:
    """Log the report's pages and figures as one MLflow run in the experiment ``paperops-report``.

    Returns:
        ``(experiment_id, run_id)``.
    """
    from components.tracking.report import log_report

    tags = {"paperops.report": "1"}
    if report.provenance.commit:
        tags["mlflow.source.git.commit"] = report.provenance.commit
        tags["paperops.git_dirty"] = str(report.provenance.dirty)
    passed = sum(1 for e in report.entries if e.gate_passed)
    tags["paperops.gates_passed"] = f"{passed}/{len(report.entries)}"
    return log_report(Path(root), report.out, report.files(), tags)
