"""Trained shared blocks (params.yaml ``blocks:``, dvc.yaml ``build-block``): validated like papers,
built before the papers that use them, and a rebuilt block reruns its users only, under a real
``dvc repro``."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from components.config import ConfigError, load_params
from tests.project_copy import ProjectCopy, copy_project

ROOT = Path(__file__).resolve().parents[2]
USER, OTHER = "diffusionclip", "relu_neuron"  # a paper that uses the clip block, one that does not


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _base() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["blocks"]["clip"].setdefault("smoke", {}).update(bogus=1), "blocks.clip[smoke].bogus"),
        (lambda d: d["blocks"]["clip"]["default"]["train"].update(steps=0), "blocks.clip[default].train.steps"),
        (lambda d: d["blocks"].update(nope={}), "blocks.nope: unknown block"),
        (lambda d: d["blocks"]["clip"].update(huge={}), "blocks.clip.huge: unknown key"),
        (lambda d: d["blocks"].update(clip=None), "blocks.clip: must be a mapping"),
        (lambda d: d.update(blocks=["clip"]), "blocks: must be a mapping"),
        (lambda d: d.pop("blocks"), f"{USER}: uses the trained block 'clip'"),
        (
            lambda d: (d["blocks"].pop("clip"), d["papers"].append(USER) if USER not in d["papers"] else None),
            f"{USER}: uses the trained block 'clip'",
        ),
    ],
)
def test_block_sections_are_validated_and_unknown_keys_refused(tmp_path: Path, mutate, expected: str) -> None:
    data = _base()
    mutate(data)
    with pytest.raises(ConfigError) as info:
        load_params(_write(tmp_path, data))
    assert expected in str(info.value)


def test_block_config_resolves_per_scale() -> None:
    params = load_params(ROOT / "params.yaml")
    smoke = params.block_config("clip", "smoke")
    default = params.block_config("clip", "default")
    assert smoke.train.steps < default.train.steps
    assert params.block_config("clip", "paper").model.vision_width == 768  # CLIP ViT-B/32's width


# ----------------------------------------------------------------------------------- real dvc repro
def _snapshot(project: ProjectCopy, name: str) -> dict[str, str]:
    files = []
    for top in ("data", "models", "reports"):
        files += [p for p in (project.path / top / name).rglob("*") if p.is_file()]
    return {str(p.relative_to(project.path)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProjectCopy, str]:
    project = copy_project(tmp_path_factory.mktemp("blocks-dvc") / "project")
    params = project.path / "params.yaml"
    params.write_text(re.sub(r"(?m)^papers:\n(?:  - .*\n)+", f"papers:\n  - {OTHER}\n  - {USER}\n", params.read_text()))
    out = project.run("dvc", "repro", timeout=1800).stdout
    return project, out


@pytest.mark.e2e
def test_block_is_built_first_and_its_fingerprint_recorded_by_its_users(repo) -> None:
    project, out = repo
    order = re.findall(r"Running stage '([^']+)'", out)
    assert order[0] == "build-block@clip", order
    built = json.loads((project.path / "models/blocks/clip/model/config.json").read_text())
    user = json.loads((project.path / f"reports/{USER}/config.json").read_text())
    other = json.loads((project.path / f"reports/{OTHER}/config.json").read_text())
    assert user["blocks"] == {"clip": built["fingerprint"]} and "blocks" not in other
    assert (project.path / "reports/blocks/clip/metrics.json").is_file()
    assert "build-block@clip" in (project.path / "dvc.lock").read_text()


@pytest.mark.e2e
def test_rebuilding_a_block_reruns_its_users_and_no_other_paper(repo) -> None:
    project, _ = repo
    params = project.path / "params.yaml"
    data = yaml.safe_load(params.read_text())
    data["blocks"]["clip"]["smoke"]["train"]["steps"] += 2
    before_other, before_user = (
        _snapshot(project, OTHER),
        json.loads((project.path / f"reports/{USER}/config.json").read_text()),
    )
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    out = project.run("dvc", "repro", timeout=1800).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert {"build-block@clip", f"train@{USER}", f"evaluate@{USER}"} <= ran, ran
    assert not {s for s in ran if s.endswith(f"@{OTHER}") and not s.startswith("validate@")}, ran
    assert _snapshot(project, OTHER) == before_other  # its validate reran, and rewrote nothing
    after_user = json.loads((project.path / f"reports/{USER}/config.json").read_text())
    assert after_user["blocks"]["clip"] != before_user["blocks"]["clip"]
    assert after_user["config"] == before_user["config"]  # the paper's own config did not change
    assert "Running stage" not in project.run("dvc", "repro").stdout  # and then it is up to date
