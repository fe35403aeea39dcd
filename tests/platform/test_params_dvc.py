"""An invalid params.yaml writes and deletes nothing under a real `dvc repro` (issue 18, 1c).

DVC removes a stage's outputs before it runs the stage's command; the `validate@<paper>` stages
(dvc.yaml) check params.yaml first and delete nothing, so a bad edit stops `dvc repro` with
every file under data/, models/ and reports/ as it was. A valid edit of one paper's section
reruns that paper's stages only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import pytest
import yaml

from tests.project_copy import ProjectCopy, copy_project

pytestmark = pytest.mark.e2e

# The two papers whose smoke pipelines are quickest; any two registered papers would do.
CHEAP = ("relu_neuron", "fractional_lms")
A, B = CHEAP


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    project = copy_project(tmp_path_factory.mktemp("params-dvc") / "project")
    params = project.path / "params.yaml"
    listed = "papers:\n" + "".join(f"  - {p}\n" for p in CHEAP)
    params.write_text(re.sub(r"(?m)^papers:\n(?:  - .*\n)+", listed, params.read_text()))
    project.run("dvc", "repro", timeout=1200)
    return project


def snapshot(project: ProjectCopy) -> dict[str, str]:
    """md5 of every file under data/, models/, reports/ and of dvc.lock."""
    files = [project.path / "dvc.lock"]
    for top in ("data", "models", "reports"):
        files += [p for p in (project.path / top).rglob("*") if p.is_file()]
    return {str(p.relative_to(project.path)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def _dict_edit(fn: Callable[[dict], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        data = yaml.safe_load(text)
        fn(data)
        return yaml.safe_dump(data, sort_keys=False)

    return edit


def _set_smoke(paper: str, group: str, key: str, value) -> Callable[[dict], None]:
    def fn(d: dict) -> None:
        d[paper].setdefault("smoke", {}).setdefault(group, {})[key] = value

    return fn


BAD_EDITS: dict[str, tuple[Callable[[str], str], str]] = {
    # name: (edit of params.yaml's text, what the error output names)
    "bool-for-int": (
        _dict_edit(_set_smoke(B, "train", "checkpoint_every", True)),
        f"{B}[smoke].train.checkpoint_every",
    ),
    "out-of-range": (_dict_edit(lambda d: d[A].setdefault("smoke", {}).update(seed=-1)), f"{A}[smoke].seed"),
    "unknown-key": (_dict_edit(lambda d: d[B].setdefault("smoke", {}).update(bogus=1)), f"{B}[smoke].bogus"),
    "null-section": (_dict_edit(lambda d: d.update({B: None})), f"{B}: must be a mapping"),
    "section-removed": (_dict_edit(lambda d: d.pop(B)), f"{B}: section missing"),
    "listed-twice": (_dict_edit(lambda d: d.update(papers=[*CHEAP, A])), A),
    "scale-missing": (_dict_edit(lambda d: d.pop("scale")), "scale"),
    "papers-missing": (_dict_edit(lambda d: d.pop("papers")), "papers"),
    "key-twice": (lambda t: re.sub(r"(?m)^scale: smoke$", "scale: smoke\nscale: paper", t), "scale"),
    "empty": (lambda t: "", ""),
}


@pytest.mark.parametrize("name", list(BAD_EDITS))
def test_bad_edit_stops_dvc_repro_and_touches_nothing(repo: ProjectCopy, name: str) -> None:
    params = repo.path / "params.yaml"
    good = params.read_text()
    before = snapshot(repo)
    edit, named = BAD_EDITS[name]
    params.write_text(edit(good))
    try:
        proc = repo.run("dvc", "repro", check=False)
    finally:
        params.write_text(good)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert named in out, out
    assert "Running stage 'prepare@" not in out and "Running stage 'train@" not in out, out
    assert snapshot(repo) == before, "a refused params.yaml changed or deleted outputs"


def test_valid_edit_of_one_paper_reruns_that_paper_only(repo: ProjectCopy) -> None:
    params = repo.path / "params.yaml"
    data = yaml.safe_load(params.read_text())
    smoke = data[B].setdefault("smoke", {})
    smoke.setdefault("data", {})["samples"] = int(smoke.get("data", {}).get("samples", 400)) + 8
    before = snapshot(repo)
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    out = repo.run("dvc", "repro").stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert {f"validate@{A}", f"validate@{B}", f"prepare@{B}"} <= ran, out
    assert not {s for s in ran if s.endswith(f"@{A}") and not s.startswith("validate@")}, out
    after = snapshot(repo)
    untouched = [k for k in before if f"/{A}/" in k or k.endswith(f"/{A}")]
    assert untouched and all(after.get(k) == before[k] for k in untouched), f"{A}'s outputs changed"
    assert after[f"reports/{B}/config.json"] != before[f"reports/{B}/config.json"]
