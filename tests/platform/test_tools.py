"""DVC and MLflow as their users expect them (issue 17), through the real tools on one cheap paper.

One project copy runs ``dvc repro`` for ``relu_neuron`` at the smoke scale and commits the lock and
the small outputs, as DVC's convention (and this project) asks. Then:

* a fresh clone of it, without data, passes ``paperops check-lock``, and each kind of incoherence
  (params edited after the run, a committed output edited, a plot naming a missing column, a
  paper listed but never run) fails it, while changed code is only reported unless ``--strict``;
* ``dvc exp run`` registers the experiment's model without moving the alias ``champion``;
* ``dvc plots show`` writes a page that needs no network, with each results table's own axes;
* the checkout, moved after the run (the old place deleted), still reads its runs, loads its
  champion and writes new runs and models into the new place; ``paperops run`` there nests its
  four stage runs under one parent and registers without MLflow's UserWarnings.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.project_copy import ProjectCopy, copy_project

# the module's fixture runs a real `dvc repro` (about a CPU-minute), counted in each test's timeout
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

PAPER = "relu_neuron"  # the quickest smoke pipeline whose gate passes (so there is a champion)
STAGES = ("prepare", "train", "evaluate", "register")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    """``dvc repro`` of PAPER alone, then the lock and every cache: false output committed."""
    project = copy_project(tmp_path_factory.mktemp("tools") / "project")
    params = project.path / "params.yaml"
    params.write_text(re.sub(r"(?m)^papers:\n(?:  - .*\n)+", f"papers:\n  - {PAPER}\n", params.read_text()))
    project.run("dvc", "repro", timeout=1200)
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "-m", "results of the smoke run")
    return project


def _registry(project: ProjectCopy, uri: str | None = None):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri or project.env["MLFLOW_TRACKING_URI"])


# --- the committed lock and metrics -----------------------------------------------------------


@pytest.fixture(scope="module")
def clone(repo: ProjectCopy, tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    """A fresh clone of ``repo``: git files only, no data, models or DVC cache."""
    dest = tmp_path_factory.mktemp("clone") / "project"
    subprocess.run(["git", "clone", "-q", str(repo.path), str(dest)], check=True)
    assert not (dest / "data" / PAPER).exists() and (dest / "dvc.lock").is_file()
    return ProjectCopy(dest, repo.env)


def test_a_fresh_clone_is_coherent(clone: ProjectCopy) -> None:
    out = clone.run("paperops", "check-lock")
    assert out.stdout.strip().endswith("coherent (0 problems, 0 stale)"), out.stdout
    metrics = json.loads((clone.path / "reports" / PAPER / "metrics.json").read_text())
    assert metrics["gate_passed"] == 1.0 and len(metrics) <= 6, metrics  # a few columns, not hundreds
    (shown,) = json.loads(clone.run("dvc", "metrics", "show", "--json").stdout).values()
    assert shown["data"][f"reports/{PAPER}/metrics.json"]["data"] == metrics  # DVC reads the committed file


def _check(clone: ProjectCopy) -> tuple[list[str], list[str]]:
    from components.config import load_params
    from components.lockcheck import check

    report = check(clone.path, load_params(clone.path / "params.yaml"))
    return report.problems, report.stale


@pytest.mark.parametrize(
    ("name", "path", "edit", "expected"),
    [
        (
            "params-changed-after-the-run",
            "params.yaml",
            lambda t: t.replace("seeds: 3", "seeds: 4"),
            f"params in params.yaml differ from dvc.lock ({PAPER} modified)",
        ),
        (
            "committed-metrics-edited",
            f"reports/{PAPER}/metrics.json",
            lambda t: t.replace('"gate_passed": 1.0', '"gate_passed": 0.0'),
            f"committed output reports/{PAPER}/metrics.json is modified",
        ),
        (
            "plot-names-a-missing-column",
            f"components/papers/{PAPER}/dvc.yaml",
            lambda t: t.replace("y: characterized", "y: no_such_column"),
            "names 'no_such_column', not a column of it",
        ),
        (
            "paper-listed-but-never-run",
            "params.yaml",
            lambda t: t.replace(f"papers:\n  - {PAPER}\n", f"papers:\n  - {PAPER}\n  - fractional_lms\n"),
            "prepare@fractional_lms: not in dvc.lock",
        ),
    ],
)
def test_check_lock_fails_on_incoherence(clone: ProjectCopy, name, path, edit, expected) -> None:
    file = clone.path / path
    good = file.read_text()
    file.write_text(edit(good))
    try:
        assert file.read_text() != good, f"{name}: the edit changed nothing"
        problems, _ = _check(clone)
        proc = clone.run("paperops", "check-lock", check=False) if name == "params-changed-after-the-run" else None
    finally:
        file.write_text(good)
    assert any(expected in p for p in problems), problems
    if proc is not None:
        assert proc.returncode == 1 and "NOT coherent" in proc.stdout, proc.stdout
    assert _check(clone) == ([], []), "restoring the file restores coherence"


def test_a_committed_report_file_no_stage_writes_is_a_problem(clone: ProjectCopy) -> None:
    stray = clone.path / "reports" / PAPER / "by_hand.csv"
    stray.write_text("a,b\n1,2\n")
    clone.run("git", "add", str(stray))
    try:
        problems, _ = _check(clone)
    finally:
        clone.run("git", "rm", "-q", "-f", str(stray))
    assert problems == [f"reports/{PAPER}/by_hand.csv: committed, but no stage of dvc.yaml writes it (git rm it)"]
    assert _check(clone) == ([], [])


def test_changed_code_is_stale_not_incoherent(clone: ProjectCopy) -> None:
    code = clone.path / "components" / "papers" / PAPER / "evaluate.py"
    good = code.read_text()
    code.write_text(good + "\n# an edit after the run\n")
    try:
        problems, stale = _check(clone)
        strict = clone.run("paperops", "check-lock", "--strict", check=False)
    finally:
        code.write_text(good)
    assert problems == [], problems
    assert any(f"components/papers/{PAPER}" in s for s in stale), stale
    assert strict.returncode == 1 and "problem: " in strict.stdout, strict.stdout


# --- experiments do not change what is served -------------------------------------------------


def test_dvc_experiment_registers_without_moving_the_champion(repo: ProjectCopy) -> None:
    client = _registry(repo)
    before = client.get_model_version_by_alias(PAPER, "champion").version
    # A real experiment: DVC rewrites params.yaml (-S) and reruns register@PAPER (forced, alone).
    out = repo.run("dvc", "exp", "run", "-S", f"{PAPER}.smoke.experiments.gd_checks=2", "-f", "-s", f"register@{PAPER}")
    name = re.search(r"Ran experiment\(s\): (\S+)", out.stdout + out.stderr).group(1)
    record = json.loads((repo.path / "reports" / PAPER / "registration.json").read_text())
    assert record["experiment"] == name and record["gate_passed"] is True and record["champion_moved"] is False
    assert client.get_model_version_by_alias(PAPER, "champion").version == before, "the experiment moved champion"
    version = client.get_model_version(PAPER, record["version"])
    assert version.tags["dvc.exp_name"] == name and version.tags["champion_moved"] == "False"
    status = repo.run("paperops", "status").stdout
    assert f"DVC experiment {name}: champion not moved" in status and f"serving v{before}" in status, status
    repo.run("paperops", "validate", PAPER)  # the params.yaml DVC rewrote is still valid
    # Promoting is explicit: a register stage in an experiment with PAPEROPS_PROMOTE_EXPERIMENTS=1 moves it
    # (DVC's variable set by hand here: the experiment above showed DVC sets it).
    env = {**repo.env, "PAPEROPS_PROMOTE_EXPERIMENTS": "1", "DVC_EXP_NAME": f"{name}-promoted"}
    subprocess.run(["paperops", "register", PAPER], cwd=repo.path, env=env, check=True, capture_output=True)
    promoted = json.loads((repo.path / "reports" / PAPER / "registration.json").read_text())
    assert promoted["champion_moved"] is True and promoted["experiment"]
    assert str(client.get_model_version_by_alias(PAPER, "champion").version) == promoted["version"]
    repo.run("git", "checkout", "--", ".")


# --- plots ------------------------------------------------------------------------------------


def test_plots_have_their_axes_and_render_offline(repo: ProjectCopy) -> None:
    shown = json.loads(repo.run("dvc", "plots", "show", "--json").stdout)
    table = f"reports/{PAPER}/results.csv"
    (plot,) = shown["data"][table]
    spec = yaml.safe_load((repo.path / "components" / "papers" / PAPER / "dvc.yaml").read_text())["plots"]
    axes = next(v for entry in spec for k, v in entry.items() if k == f"../../../{table}")
    encoding = plot["content"]["encoding"]
    assert (encoding["x"]["field"], encoding["y"]["field"]) == (axes["x"], axes["y"])
    rows = plot["content"]["data"]["values"]
    assert rows and all(axes["x"] in r and axes["y"] in r for r in rows)
    assert not [e for e in shown.get("errors", []) if e["name"] == table], shown["errors"]

    repo.run("dvc", "plots", "show")
    page = (repo.path / "dvc_plots" / "index.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc=", page), "the page loads a script from elsewhere"
    assert "cdn.jsdelivr" not in page and "window.vegaEmbed=" in page  # Vega travels inside the page
    assert f"vegaEmbed('#{table.replace('/', '_').replace('.', '_')}', spec)" in page
    assert "dvc_plots" in (repo.path / ".gitignore").read_text()


# --- a moved checkout -------------------------------------------------------------------------


def _cells_naming(db: Path, place: Path) -> list[str]:
    """Every (table.column) of the store that still names ``place``."""
    con = sqlite3.connect(db)
    found = []
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        for col in [r[1] for r in con.execute(f"PRAGMA table_info('{table}')")]:
            hit = con.execute(
                f'SELECT count(*) FROM "{table}" WHERE instr(CAST("{col}" AS TEXT), ?) > 0', (str(place),)
            ).fetchone()[0]
            if hit:
                found.append(f"{table}.{col}")
    con.close()
    return found


def test_a_moved_checkout_reads_and_writes_its_own_store(repo: ProjectCopy, tmp_path: Path) -> None:
    first, moved = tmp_path / "first", tmp_path / "moved"
    shutil.copytree(repo.path, first, symlinks=True)
    env = {k: v for k, v in repo.env.items() if k != "MLFLOW_TRACKING_URI"}  # the default store: ./mlflow.db
    subprocess.run(["paperops", "status"], cwd=first, env=env, check=True, capture_output=True)
    shutil.move(first, moved)  # the checkout moves; its old place is gone
    assert not first.exists()
    project = ProjectCopy(moved, env)

    status = project.run("paperops", "status").stdout
    champion = re.search(r"serving v(\d+)", status).group(1)
    uri = f"sqlite:///{moved / 'mlflow.db'}"
    client = _registry(project, uri)
    exp = client.get_experiment_by_name(PAPER)
    assert exp.artifact_location == (moved / "mlartifacts" / PAPER).as_uri()
    evaluate = client.search_runs([exp.experiment_id], "tags.`paperops.stage` = 'evaluate'")[0]
    assert [a.path for a in client.list_artifacts(evaluate.info.run_id, "figures")]
    assert not _cells_naming(moved / "mlflow.db", repo.path) and not _cells_naming(moved / "mlflow.db", first)

    loaded = project.run(
        "python",
        "-c",
        "import sys, numpy as np, mlflow; from pathlib import Path; from components import tracking; "
        "tracking.configure(Path.cwd()); "
        f"m = mlflow.pyfunc.load_model('models:/{PAPER}@champion'); "
        "print(np.asarray(m.predict(np.array([[1.0, 0.0], [0.0, 1.0]]))).shape)",
    )
    assert "(2,)" in loaded.stdout, loaded.stdout + loaded.stderr

    run = project.run("paperops", "run", PAPER, timeout=1200)
    assert "UserWarning" not in run.stderr, run.stderr  # MLflow's warnings at register are gone
    record = json.loads((moved / "reports" / PAPER / "registration.json").read_text())
    stored = client.get_model_version_download_uri(PAPER, record["version"])  # model_versions.storage_location
    assert stored.startswith((moved / "mlartifacts").as_uri()), stored
    assert champion != record["version"]
    parents = client.search_runs([exp.experiment_id], "tags.`paperops.stage` = 'pipeline'")
    newest = max(parents, key=lambda r: r.info.start_time)
    assert newest.info.run_name == f"{PAPER}/pipeline/smoke" and newest.info.status == "FINISHED"
    assert newest.data.tags["paperops.pipeline"].startswith("paperops-run-")
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{newest.info.run_id}'")
    assert sorted(r.info.run_name for r in children) == sorted(f"{PAPER}/{s}/smoke" for s in STAGES)
    assert newest.data.tags["registered_version"] == record["version"]
