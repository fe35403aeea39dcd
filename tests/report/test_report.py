"""The one report, end to end, on real outputs in a project copy (MLflow in a SQLite store inside it).

The all-papers Prefect flow runs the real DVC pipeline of one cheap paper, then writes the report and
publishes it (Prefect artifact ``paperops-report``, MLflow run in ``paperops-report``). A second
paper is then run by hand (``paperops run``: real outputs and registry, nothing in dvc.lock) and
``paperops report`` rewrites the report for both. The tests check what the report says against
those inputs, render it in headless Chromium and call the CLI. Smoke scale; about a minute and a
half of CPU, most of it the paper's five stage processes.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.report import CLAIMS
from tests.project_copy import ProjectCopy, copy_project
from tests.report.chromium import chromium_path, evaluate_in_page

pytestmark = pytest.mark.e2e

FLOWN = "fractional_lms"  # through the all-papers flow and DVC (one of the quickest smoke pipelines)
BY_HAND = "relu_neuron"  # then `paperops run` (one process, no DVC)
PAPERS = (FLOWN, BY_HAND)


@dataclass
class Setup:
    project: ProjectCopy
    results: dict[str, Any]  # what all_papers returned
    artifact: Any  # the Prefect artifact `paperops-report`
    flow_html: str  # reports/index.html and REPORT.md as the flow wrote them
    flow_md: str
    cli_stdout: str  # `paperops report` after BY_HAND ran


def _list_papers(project: ProjectCopy, papers: tuple[str, ...]) -> None:
    params = project.path / "params.yaml"
    listed = "papers:\n" + "".join(f"  - {p}\n" for p in papers)
    params.write_text(re.sub(r"(?m)^papers:\n(?:  - .*\n)+", listed, params.read_text()))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import all_papers

    project = copy_project(tmp_path_factory.mktemp("report") / "project")
    _list_papers(project, (FLOWN,))
    project.run("git", "commit", "-qam", "one paper")
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "PATH", "PAPEROPS_NO_PROGRESS")}
    os.environ.update({k: project.env[k] for k in saved})
    try:
        with prefect_test_harness(server_startup_timeout=120):
            state = all_papers(str(project.path), return_state=True)
            assert state.is_completed(), state
            artifact = _read_artifact("paperops-report")
        reports = project.path / "reports"
        flow_html, flow_md = (reports / "index.html").read_text(), (reports / "REPORT.md").read_text()
        _list_papers(project, PAPERS)
        project.run("paperops", "run", BY_HAND)
        proc = project.run("paperops", "report")
        yield Setup(project, state.result(), artifact, flow_html, flow_md, proc.stdout)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _read_artifact(key: str):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))

    found = asyncio.run(read())
    return found[0] if found else None


class Links(HTMLParser):
    """Every href / src, and every section of class ``paper`` with its id."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"] or "")
        if tag == "img" and a.get("src"):
            self.srcs.append(a["src"] or "")
        if tag == "section" and "paper" in (a.get("class") or "").split():
            self.sections.append(a.get("id") or "")


def _section(html: str, paper: str) -> str:
    start = html.index(f'<section class="paper" id="paper-{paper}">')
    return html[start : html.index("</section>", start)]


def _check_paper(section: str, md: str, project: ProjectCopy, paper: str) -> None:
    """The section of ``paper`` says what its outputs, dvc.lock, git and the MLflow store hold."""
    from mlflow import MlflowClient

    reports = project.path / "reports"
    record = json.loads((reports / paper / "registration.json").read_text())
    metrics = {
        **json.loads((reports / paper / "all_metrics.json").read_text()),
        **json.loads((reports / paper / "metrics.json").read_text()),
    }
    claims = yaml.safe_load(CLAIMS.read_text())
    assert f"version {record['version']}" in section
    assert ("passed" if record["gate_passed"] else "FAILED") in section
    lock = yaml.safe_load((project.path / "dvc.lock").read_text())["stages"]
    if f"prepare@{paper}" in lock:
        data_md5 = next(o["md5"] for o in lock[f"prepare@{paper}"]["outs"] if o["path"] == f"data/{paper}")
        assert data_md5 in section and data_md5 in md
    else:
        assert "none in dvc.lock" in section
    assert project.run("git", "rev-parse", "HEAD").stdout.strip() in section
    client = MlflowClient(tracking_uri=project.env["MLFLOW_TRACKING_URI"])
    experiment = client.get_run(record["run_id"]).info.experiment_id
    link = f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{record['run_id']}"
    assert f'href="{link}"' in section and f"]({link})" in md
    assert f"{metrics[claims[paper]['ours']['metric']]:.4g}" in section
    claim = " ".join(claims[paper]["claim"].split())
    assert claim.replace("'", "&#x27;") in section and claim in md
    figures = sorted((reports / paper / "figures").glob("*.png"))
    assert figures, f"{paper} wrote no figure: the image checks would check nothing"
    for fig in figures:
        assert f'src="{paper}/figures/{fig.name}"' in section


def test_flow_writes_report_from_the_real_outputs(setup: Setup) -> None:
    assert set(setup.results) == {FLOWN}
    _check_paper(_section(setup.flow_html, FLOWN), setup.flow_md, setup.project, FLOWN)
    assert "paper-" + BY_HAND not in setup.flow_html


def test_cli_report_covers_a_paper_run_without_dvc(setup: Setup) -> None:
    reports = setup.project.path / "reports"
    assert f"report: {reports / 'index.html'}" in setup.cli_stdout
    html, md = (reports / "index.html").read_text(), (reports / "REPORT.md").read_text()
    for paper in PAPERS:
        _check_paper(_section(html, paper), md, setup.project, paper)
    assert (reports / "figures" / "overview.png").stat().st_size > 1000


def test_flow_publishes_prefect_and_mlflow_artifacts(setup: Setup, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    artifact = setup.artifact
    assert artifact is not None and artifact.type == "markdown"
    from flows.report import artifact_text

    assert artifact_text(setup.flow_md) in artifact.data and "![" not in artifact.data
    assert len(artifact_text(setup.flow_md).splitlines()) > 20
    client = MlflowClient(tracking_uri=setup.project.env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("paperops-report")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_id in artifact.data
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"index.html", "REPORT.md", "figures"} <= logged
    reports = setup.project.path / "reports"
    figs = {a.path for a in client.list_artifacts(run.info.run_id, f"{FLOWN}/figures")}
    assert figs == {f"{FLOWN}/figures/{p.name}" for p in (reports / FLOWN / "figures").glob("*.png")}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "figures")} == {"figures/overview.png"}
    local = client.download_artifacts(run.info.run_id, "index.html", str(tmp_path))
    assert Path(local).read_text() == setup.flow_html


def test_report_renders_in_headless_chromium(setup: Setup) -> None:
    """Title, one section per paper, every image decoded, every local link resolves."""
    if chromium_path() is None:
        if os.environ.get("PAPEROPS_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is not installed and PAPEROPS_REQUIRE_CHROMIUM=1 (apt-get install chromium)")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    page = setup.project.path / "reports" / "index.html"
    probe = """JSON.stringify({
      title: document.title,
      sections: Array.from(document.querySelectorAll('section.paper')).map(s => s.id),
      images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), url: i.src,
        ok: i.complete && i.naturalWidth > 0})),
      links: Array.from(document.querySelectorAll('a[href]')).map(a => ({href: a.getAttribute('href'),
        url: a.href, target: a.hash && a.href.split('#')[0] === location.href.split('#')[0]
          ? !!document.getElementById(decodeURIComponent(a.hash.slice(1))) : null}))
    })"""
    seen = json.loads(evaluate_in_page(page.as_uri(), probe))
    assert seen["title"].strip()
    assert seen["sections"] == [f"paper-{p}" for p in PAPERS]
    expected = 1 + sum(len(list((page.parent / p / "figures").glob("*.png"))) for p in PAPERS)
    assert len(seen["images"]) == expected
    assert [i["src"] for i in seen["images"] if not i["ok"]] == []
    local = [link for link in seen["links"] if not link["url"].startswith(("http://", "https://"))]
    assert local, "the page has local links (anchors, results.md)"
    for link in local:
        if link["target"] is not None:  # an anchor of this page
            assert link["target"], f"anchor {link['href']} names no element"
        else:
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(link["url"]).path))
            assert link["url"].startswith("file://") and path.is_file(), f"{link['href']} -> {path}"


def test_cli_report_elsewhere_is_self_contained(setup: Setup, tmp_path: Path, monkeypatch, capsys) -> None:
    """``paperops report --out DIR --mlflow-ui URL``: figures copied beside the page, links to that UI.
    (In process: the console script itself ran in the fixture.)"""
    from components.cli import main

    monkeypatch.chdir(setup.project.path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", setup.project.env["MLFLOW_TRACKING_URI"])
    out = tmp_path / "site"
    assert main(["report", "--out", str(out), "--mlflow-ui", "https://mlflow.example.org/"]) == 0
    assert f"report: {out / 'index.html'}" in capsys.readouterr().out
    html = (out / "index.html").read_text()
    links = Links()
    links.feed(html)
    assert links.sections == [f"paper-{p}" for p in PAPERS]
    assert any(h.startswith("https://mlflow.example.org/#/experiments/") for h in links.hrefs)
    for src in links.srcs:
        assert not urllib.parse.urlparse(src).scheme and (out / urllib.parse.unquote(src)).is_file(), src


def test_cli_refuses_a_link_base_that_is_not_http(setup: Setup, monkeypatch, capsys) -> None:
    from components.cli import main

    monkeypatch.chdir(setup.project.path)
    assert main(["report", "--mlflow-ui", "javascript:alert(1)"]) == 2
    assert "http(s)" in capsys.readouterr().err


def test_missing_claim_renders_and_text_is_escaped(setup: Setup, tmp_path: Path, monkeypatch) -> None:
    from components.report import write_report

    project = setup.project
    monkeypatch.setenv("MLFLOW_TRACKING_URI", project.env["MLFLOW_TRACKING_URI"])
    first, second = PAPERS
    claims = yaml.safe_load(CLAIMS.read_text())
    claims = {first: {**claims[first], "claim": 'Beats <script>alert("x")</script> & more', "note": "a|b"}}
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(claims))
    never_ran = "ccdf"  # registered in the code, listed, never run in this copy
    written = write_report(project.path, tmp_path / "out", [*PAPERS, never_ran], claims_path=path)
    html = written.html.read_text()
    links = Links()
    links.feed(html)
    for ref in links.srcs + [h for h in links.hrefs if not urllib.parse.urlparse(h).scheme]:
        target = ref.split("#")[0]
        assert not target or (written.out / urllib.parse.unquote(target)).is_file(), ref
    nothing = _section(html, never_ran)
    assert "not registered yet" in nothing and "none written yet" in nothing and "none in dvc.lock" in nothing
    assert "<script>" not in html
    assert "Beats &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in _section(html, first)
    assert "no claim recorded" in _section(html, second) and "no claim recorded" not in _section(html, first)
    record = json.loads((project.path / "reports" / second / "registration.json").read_text())
    assert f"version {record['version']}" in _section(html, second)  # the measured part is still there
    assert "a\\|b" in written.markdown.read_text()


def test_claim_metric_keys_exist_in_the_committed_reports() -> None:
    """Every metric claims.yaml names is one the paper's evaluate stage writes (committed reports/)."""
    from components.config import load_params
    from components.report.collect import load_claims

    claims = load_claims()
    root = Path(__file__).resolve().parents[2]
    for paper in load_params(root / "params.yaml").papers:
        assert paper in claims, f"{paper}: no entry in components/report/claims.yaml"
        reports = root / "reports" / paper
        if not (reports / "all_metrics.json").is_file():
            continue  # never ran here; test_committed_results reports that
        metrics = {
            **json.loads((reports / "all_metrics.json").read_text()),
            **json.loads((reports / "metrics.json").read_text()),
        }
        entry = claims[paper]
        keys = [entry["ours"]["metric"]]
        if base := entry.get("baseline"):
            se = base.get("se")
            keys += [base.get("metric"), base["diff"], *([se] if isinstance(se, str) else se or [])]
        assert [k for k in keys if k and k not in metrics] == [], paper


def test_chromium_helper_reports_a_broken_image(tmp_path: Path) -> None:
    """The browser probe can fail: an <img> whose file is missing is not ``complete && naturalWidth``."""
    if chromium_path() is None:
        if os.environ.get("PAPEROPS_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is not installed and PAPEROPS_REQUIRE_CHROMIUM=1")
        pytest.skip("chromium is not installed")
    page = tmp_path / "p.html"
    page.write_text('<!DOCTYPE html><title>t</title><img src="missing.png">')
    seen = evaluate_in_page(page.as_uri(), "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    assert seen == [False]
