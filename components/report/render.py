"""The report as HTML (``index.html``) and markdown (``REPORT.md``) from the collected entries.

The HTML is one self-contained page: inline CSS, no script, images and links relative to the
folder it is written in (the figures sit under it), so it opens offline from a file:// URL. Every
text that comes from a file (claims, reasons, metric keys, paths) is escaped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from urllib.parse import quote

from components.report.collect import PaperEntry, Provenance
from components.report.figure import why_no_bar

NO_CLAIM = "no claim recorded (add this paper to components/report/claims.yaml)"
OVERVIEW = "figures/overview.png"


def papers(n: int) -> str:
    """``1 paper``, ``10 papers``."""
    return f"{n} paper" if n == 1 else f"{n} papers"


def fmt(value: float | None, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; ``not measured`` for None."""
    return "not measured" if value is None else f"{value:.{digits}g}"


def verdict(entry: PaperEntry) -> str:
    """``passed`` / ``FAILED: reasons`` / ``not registered yet``."""
    if entry.gate_passed is None:
        return "not registered yet"
    if entry.gate_passed:
        return "passed"
    return "FAILED: " + ("; ".join(entry.reasons) or "no reason given")


def registered(entry: PaperEntry) -> str:
    if entry.version is None:
        return "not registered"
    champion = {True: "now champion", False: "champion not moved", None: "champion unknown"}[entry.champion_moved]
    return f"version {entry.version} ({champion}), scale {entry.scale or '?'}"


def baseline_text(entry: PaperEntry) -> str:
    b = entry.baseline
    if entry.claim is None:
        return NO_CLAIM
    if b is None:
        return "no classical baseline recorded"
    parts = [b.name]
    if b.value is not None:
        parts.append(f"value {fmt(b.value)}")
    diff = f"difference ({b.diff_key}) {fmt(b.diff)}"
    if b.se is not None:
        diff += f" +- {fmt(b.se, 2)} se"
    parts.append(diff)
    if b.verdict:
        parts.append(b.verdict)
    return "; ".join(parts)


def paper_number_text(entry: PaperEntry) -> str:
    if entry.claim is None:
        return NO_CLAIM
    if not entry.paper_number:
        return "none quoted (see the paper's README)"
    return f"{entry.paper_number.get('value', '')} ({entry.paper_number.get('source', 'source not given')})"


def ours_text(entry: PaperEntry) -> str:
    if entry.claim is None:
        return NO_CLAIM
    return f"{fmt(entry.ours)} ({entry.ours_label or ''}; {entry.ours_key or 'no metric named'})"


def _anchor(paper: str) -> str:
    return "paper-" + "".join(c if c.isalnum() or c in "_-" else "-" for c in paper)


def _commit_text(prov: Provenance) -> str:
    if prov.commit is None:
        return "not a git checkout"
    dirty = {True: f"dirty: {len(prov.dirty_files)} tracked files differ", False: "clean", None: "?"}[prov.dirty]
    return f"{prov.commit} ({dirty})"


def html(entries: Sequence[PaperEntry], prov: Provenance, figures_ok: set[str]) -> str:
    """The page. ``figures_ok``: the figure paths (relative to the page) that exist beside it."""
    e = escape
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>paperops report: {papers(len(entries))}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.3em .5em;"
        "vertical-align:top;text-align:left}th{background:#f4f4f4}.pass{color:#2e7d32;font-weight:bold}"
        ".fail{color:#c62828;font-weight:bold}.none{color:#757575}code{font-size:90%}"
        "img{max-width:100%;border:1px solid #ddd;margin:.3em 0}section{border-top:2px solid #ddd;"
        "margin-top:1.5em}</style>",
        "</head><body>",
        f"<h1>paperops: {papers(len(entries))}, one report</h1>",
        f"<p>Written {e(now)} from commit <code>{e(_commit_text(prov))}</code>. MLflow tracking URI "
        f"<code>{e(prov.tracking_uri)}</code>; run links open the MLflow UI at <code>{e(prov.mlflow_ui)}</code> "
        "(<code>make mlflow-ui</code>).</p>",
    ]
    if prov.dirty_files:
        out.append("<p>Tracked files that differ from the commit: " + e(", ".join(prov.dirty_files[:20])) + "</p>")
    out.append("<h2>Overview</h2>")
    if OVERVIEW in figures_ok:
        out.append(
            f'<img src="{e(quote(OVERVIEW))}" alt="ours minus classical baseline in standard errors, per paper">'
        )
    out.append(
        "<table><tr><th>paper</th><th>gate</th><th>ours</th><th>vs classical baseline</th><th>registered</th></tr>"
    )
    for en in entries:
        cls = {True: "pass", False: "fail", None: "none"}[en.gate_passed]
        vs = (en.baseline.verdict if en.baseline else "") or why_no_bar(en) or ""
        out.append(
            f'<tr><td><a href="#{_anchor(en.paper)}">{e(en.paper)}</a></td>'
            f'<td class="{cls}">{e(verdict(en))}</td><td>{e(fmt(en.ours))}</td><td>{e(vs)}</td>'
            f"<td>{e(registered(en))}</td></tr>"
        )
    out.append("</table>")
    for en in entries:
        cls = {True: "pass", False: "fail", None: "none"}[en.gate_passed]
        title = f"{en.title} (arXiv {en.arxiv})" if en.title else ""
        out.append(f'<section class="paper" id="{_anchor(en.paper)}"><h2>{e(en.paper)}</h2>')
        if title:
            out.append(f"<p><em>{e(title)}</em></p>")
        link = (
            f'<a class="mlflow" href="{e(en.run_url)}">run {e(en.run_id or "")}</a>'
            if en.run_url
            else e(f"run {en.run_id} (not in this MLflow store)" if en.run_id else "no run recorded")
        )
        hashes = "<br>".join(f"<code>{e(p)}</code>: <code>{e(h)}</code>" for p, h in en.data_hashes.items())
        rows = [
            ("claim", e(en.claim or NO_CLAIM)),
            ("paper's number", e(paper_number_text(en))),
            ("ours", e(ours_text(en))),
            ("classical baseline", e(baseline_text(en))),
            ("gate", f'<span class="{cls}">{e(verdict(en))}</span>'),
            ("registered", e(registered(en))),
            ("MLflow", link),
            ("commit", f"<code>{e(_commit_text(prov))}</code>"),
            ("data hashes (dvc.lock md5)", hashes or "none in dvc.lock"),
            ("files", ", ".join(f'<a href="{e(quote(f))}">{e(f)}</a>' for f in en.files) or "none written yet"),
        ]
        if en.note:
            rows.insert(4, ("note", e(en.note)))
        if en.missing:
            rows.append(("missing metrics", e(", ".join(en.missing))))
        out.append("<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>")
        for fig in en.figures:
            if fig in figures_ok:
                out.append(
                    f'<figure><img src="{e(quote(fig))}" alt="{e(fig)}"><figcaption>{e(fig)}</figcaption></figure>'
                )
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    """Table-cell safe markdown: no pipes or newlines breaking the row."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(entries: Sequence[PaperEntry], prov: Provenance, figures_ok: set[str]) -> str:
    """The same content as markdown (REPORT.md, and the Prefect artifact)."""
    lines = [
        f"# paperops: {papers(len(entries))}, one report",
        "",
        f"Commit `{_commit_text(prov)}`; MLflow `{prov.tracking_uri}`, UI {prov.mlflow_ui}.",
        "",
    ]
    if OVERVIEW in figures_ok:
        lines += [f"![overview]({OVERVIEW})", ""]
    lines += ["| paper | gate | ours | vs classical baseline | registered |", "|---|---|---|---|---|"]
    for en in entries:
        vs = (en.baseline.verdict if en.baseline else "") or why_no_bar(en)
        lines.append(f"| {_md(en.paper)} | {_md(verdict(en))} | {fmt(en.ours)} | {_md(vs)} | {_md(registered(en))} |")
    for en in entries:
        lines += ["", f"## {en.paper}", ""]
        if en.title:
            lines += [f"*{en.title}* (arXiv {en.arxiv})", ""]
        run = f"[run {en.run_id}]({en.run_url})" if en.run_url else (f"run {en.run_id}" if en.run_id else "none")
        rows = [
            ("claim", en.claim or NO_CLAIM),
            ("paper's number", paper_number_text(en)),
            ("ours", ours_text(en)),
            ("classical baseline", baseline_text(en)),
            *([("note", en.note)] if en.note else []),
            ("gate", verdict(en)),
            ("registered", registered(en)),
            ("MLflow", run),
            ("data hashes", ", ".join(f"`{p}` {h}" for p, h in en.data_hashes.items()) or "none in dvc.lock"),
            *([("missing metrics", ", ".join(en.missing))] if en.missing else []),
        ]
        lines += ["| | |", "|---|---|", *(f"| {k} | {_md(v)} |" for k, v in rows)]
        figs = [f for f in en.figures if f in figures_ok]
        if figs:
            lines += ["", *(f"![{f}]({quote(f)})" for f in figs)]
    return "\n".join(lines) + "\n"
