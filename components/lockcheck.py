"""``paperops check-lock``: do the committed results agree with the pipeline that claims them?

DVC's convention is to commit ``dvc.lock`` and the small outputs kept out of its cache
(``cache: false``: here every ``reports/<paper>/*.json``, ``results.csv`` and ``results.md``), so a
fresh clone knows what the last run was and ``dvc exp show`` / ``dvc metrics diff`` compare against
it. This check runs on a clone without any data (CI) and fails when the commit is incoherent:

* ``dvc.lock`` is not committed, or lacks a stage of a paper in ``papers:``;
* ``dvc status`` finds a stage whose command or params differ from the lock (params.yaml or
  dvc.yaml changed after the run that wrote the lock);
* a committed output differs from the hash the lock recorded (edited by hand, or from another run),
  or an output with ``cache: false`` is not committed at all;
* a file under ``reports/`` is committed that no stage writes (a leftover the next run leaves stale);
* a paper's ``metrics.json`` lacks the gate's verdict or one of its headline metrics;
* a paper has no plot of its ``results.csv`` under ``plots:`` (in its own
  ``components/papers/<paper>/dvc.yaml``), or the plot names a column the committed table lacks.

What ``dvc status`` reports for data, models and figures (in the DVC cache and remote, not in git)
is expected on a clone and ignored. A code dependency changed since the lock (``components/...``)
means the committed results are those of older code: reported, and a failure only with
``--strict``, since a CPU run of every paper is needed to refresh them (``make run``, then commit
``dvc.lock`` and ``reports/``). Requiring that for every code change would make the lock
impossible to keep committed in a project where code changes daily.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.config import Params
from components.outputs import GATE_KEYS, METRICS

STAGE_ORDER = ("validate", "prepare", "train", "evaluate", "register")


@dataclass
class LockReport:
    """``problems`` fail the check; ``stale`` (code changed since the lock) fails only when strict."""

    problems: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ok(self, strict: bool = False) -> bool:
        return not self.problems and not (strict and self.stale)

    def lines(self, strict: bool = False) -> list[str]:
        out = [f"problem: {p}" for p in self.problems]
        out += [f"{'problem' if strict else 'stale'}: {s}" for s in self.stale]
        return out + [f"note: {n}" for n in self.notes]


def _git_files(root: Path) -> set[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout.decode()
    return set(filter(None, out.split("\0")))


def dvc_status(root: Path) -> dict[str, Any]:
    """``dvc status --json`` of the workspace (what differs from dvc.lock)."""
    # the dvc beside this interpreter first: `.venv/bin/paperops check-lock` works without an activated venv
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    if dvc is None:
        raise RuntimeError("dvc is not installed beside this Python nor on PATH (make setup installs it)")
    proc = subprocess.run([dvc, "status", "--json"], cwd=root, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc status failed ({proc.returncode}): {proc.stderr.strip()}")
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith(("{", "}", '"', "[", "]"))]
    return json.loads("\n".join(lines) or "{}")


def _absent_cached_outs(root: Path, lock: dict[str, Any], tracked: set[str]) -> tuple[str, ...]:
    """Outputs the lock records that live in DVC's cache (not in git) and are absent here (a clone)."""
    outs = {str(o["path"]) for body in lock.values() for o in (body or {}).get("outs") or [] if "path" in o}
    return tuple(sorted(o for o in outs if o not in tracked and not (root / o).exists()))


def _classify(
    stage: str, changes: list[Any], tracked: set[str], report: LockReport, absent: tuple[str, ...] = ()
) -> None:
    """Sort one stage's ``dvc status`` entries into problems, stale code and expected absences.

    ``absent``: cached outputs missing from this checkout; a dependency that holds one (``models/blocks``
    holds ``models/blocks/<block>``) differs from the lock for that reason alone, as data does.
    """
    for change in changes:
        if isinstance(change, str):  # "changed command", "always changed", "changed checksum"
            report.problems.append(f"{stage}: {change} (dvc.yaml changed since the run that wrote dvc.lock)")
            continue
        for kind, paths in change.items():
            if not isinstance(paths, dict):
                report.problems.append(f"{stage}: {kind}: {paths}")
                continue
            for path, state in paths.items():
                if kind == "changed deps" and isinstance(state, dict):  # params: {key: modified|new|deleted}
                    keys = ", ".join(f"{k} {v}" for k, v in sorted(state.items()))
                    report.problems.append(f"{stage}: params in {path} differ from dvc.lock ({keys})")
                elif path not in tracked and not any(t.startswith(path.rstrip("/") + "/") for t in tracked):
                    continue  # data, models, figures: in the DVC cache and remote, not in git
                elif kind == "changed deps" and any(a.startswith(path.rstrip("/") + "/") for a in absent):
                    continue  # a folder in git that also holds another stage's cached output, absent here
                elif kind == "changed outs":
                    report.problems.append(f"{stage}: committed output {path} is {state}, not what dvc.lock recorded")
                else:
                    report.stale.append(f"{stage}: dependency {path} {state} since dvc.lock (results from older code)")


def _cache_false_outs(dvc_yaml: dict[str, Any], stage: str, paper: str) -> list[str]:
    """The outputs of ``<stage>@<paper>`` that dvc.yaml keeps out of DVC's cache (committed with git)."""
    body = (dvc_yaml.get("stages") or {}).get(stage) or {}
    body = body.get("do", body)
    paths = []
    for kind in ("outs", "metrics", "plots"):
        for entry in body.get(kind) or []:
            if isinstance(entry, dict):
                for path, opts in entry.items():
                    if (opts or {}).get("cache") is False:
                        paths.append(str(path).replace("${item}", paper).replace("${key}", paper))
    return paths


def _plot_columns(root: Path, paper: str) -> list[tuple[str, list[str]]]:
    """(template, columns named) of each top-level plot of ``reports/<paper>/results.csv`` in the
    root dvc.yaml or the paper's own (``components/papers/<paper>/dvc.yaml``; paths relative to it)."""
    target = f"reports/{paper}/results.csv"
    found = []
    for file in (root / "dvc.yaml", root / "components" / "papers" / paper / "dvc.yaml"):
        if not file.is_file():
            continue
        where = file.parent.relative_to(root)
        for entry in (yaml.safe_load(file.read_text()) or {}).get("plots") or []:
            for plot_id, spec in entry.items() if isinstance(entry, dict) else []:
                spec = spec or {}
                named: list[str] = []
                own = os.path.normpath(where / str(plot_id)) == target
                for axis in ("x", "y"):
                    value = spec.get(axis)
                    if isinstance(value, dict):
                        for path, cols in value.items():
                            if os.path.normpath(where / str(path)) == target:
                                named += [cols] if isinstance(cols, str) else list(cols)
                    elif own and value is not None:
                        named += [value] if isinstance(value, str) else list(value)
                if own or named:
                    found.append((str(spec.get("template", "linear")), named))
    return found


def check(root: Path, params: Params) -> LockReport:
    """Check the committed lock and reports of ``root`` against its dvc.yaml and params.yaml."""
    from components.registry import get_paper

    root = Path(root)
    report = LockReport()
    tracked = _git_files(root)
    if "dvc.lock" not in tracked:
        report.problems.append(
            "dvc.lock is not committed: run `make run` (or `dvc repro`), then commit dvc.lock and reports/"
        )
        return report
    lock = (yaml.safe_load((root / "dvc.lock").read_text()) or {}).get("stages", {})
    dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text()) or {}
    listed = set(params.papers)
    for name in sorted(lock):
        stage, _, paper = name.partition("@")
        if stage == "build-block" and paper in params.blocks:  # a shared block (params.yaml blocks:)
            continue
        if paper and paper not in listed:
            report.notes.append(
                f"dvc.lock keeps {name} for a paper not in papers: (harmless; delete the entry to tidy)"
            )
    for paper in params.papers:
        for stage in STAGE_ORDER:
            if f"{stage}@{paper}" not in lock:
                report.problems.append(
                    f"{stage}@{paper}: not in dvc.lock (the paper has not run since it joined papers:)"
                )
            for out in _cache_false_outs(dvc_yaml, stage, paper):
                if out not in tracked:
                    report.problems.append(f"{stage}@{paper}: output {out} (cache: false) is not committed")
    committed_outs = {
        out for paper in params.papers for s in STAGE_ORDER for out in _cache_false_outs(dvc_yaml, s, paper)
    }
    for block in params.blocks:
        for out in _cache_false_outs(dvc_yaml, "build-block", block):
            committed_outs.add(out)
            if out not in tracked:
                report.problems.append(f"build-block@{block}: output {out} (cache: false) is not committed")
    for path in sorted(tracked):
        # a committed report file that no stage writes is a leftover: the next run leaves it stale
        if path.startswith("reports/") and path not in committed_outs and not path.endswith(".gitignore"):
            report.problems.append(f"{path}: committed, but no stage of dvc.yaml writes it (git rm it)")
    status = dvc_status(root)
    absent = _absent_cached_outs(root, lock, tracked)
    for stage, changes in sorted(status.items()):
        _classify(stage, changes, tracked, report, absent)
    for paper in params.papers:
        _check_paper(root, paper, get_paper(paper).headline, tracked, report)
    return report


def _check_paper(root: Path, paper: str, headline: tuple[str, ...], tracked: set[str], report: LockReport) -> None:
    """metrics.json holds the gate's verdict and the headline; results.csv has a plot with its columns."""
    rel = f"reports/{paper}/{METRICS}"
    if rel in tracked:
        metrics = json.loads((root / rel).read_text())
        missing = [k for k in GATE_KEYS if k not in metrics]
        missing += [p for p in headline if not any(fnmatch.fnmatchcase(k, p) for k in metrics)]
        if missing:
            report.problems.append(f"{rel}: no {', '.join(missing)} (rerun `paperops evaluate {paper}`)")
    plots = _plot_columns(root, paper)
    table = f"reports/{paper}/results.csv"
    if not plots:
        report.problems.append(
            f"components/papers/{paper}/dvc.yaml: no plot of {table} under plots: (give its x, y and template)"
        )
        return
    if table not in tracked:
        return  # reported above as an uncommitted cache: false output
    with open(root / table, newline="") as fh:
        header = next(csv.reader(fh), [])
    for template, columns in plots:
        if len(columns) < 2:
            report.problems.append(f"the plot of {table} ({template}) needs both x and y")
        for col in columns:
            if col not in header:
                report.problems.append(f"the plot of {table} names {col!r}, not a column of it")
