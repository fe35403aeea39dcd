"""params.yaml validation: bad params stop every command before any work, naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import SCALES, ConfigError, config_hash, deep_merge, flatten, load_params

ROOT = Path(__file__).resolve().parents[2]


def write_params(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def base() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_project_params_validate_at_every_scale() -> None:
    for scale in SCALES:
        params = load_params(ROOT / "params.yaml", scale=scale)
        for paper in params.papers:
            cfg = params.config(paper)
            assert cfg.model_dump()  # resolved and validated


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["noise2score"]["smoke"].update(bogus=1), "noise2score[smoke].bogus"),
        (lambda d: d["noise2score"]["common"].update(seed="abc"), "noise2score[smoke].seed"),
        (lambda d: d["noise2score"]["paper"].update(seed=-3), "noise2score[paper].seed"),
        (lambda d: d["noise2score"].update(tiny={}), "noise2score.tiny: unknown key"),
        (lambda d: d.update(scale="huge"), "scale: must be one of"),
        (lambda d: d.update(papers=["nope"]), "unknown paper 'nope'"),
        (lambda d: d.update(nope={}), "nope: unknown key"),
        (lambda d: d["noise2score"]["default"].update(device="tpu"), "noise2score[default].device"),
    ],
)
def test_bad_params_name_the_key(tmp_path: Path, mutate, expected: str) -> None:
    data = base()
    for key in ("common", "smoke", "default", "paper"):
        data["noise2score"][key] = data["noise2score"].get(key) or {}
    mutate(data)
    with pytest.raises(ConfigError) as info:
        load_params(write_params(tmp_path, data))
    assert expected in str(info.value)


def test_nested_unknown_key_is_named(tmp_path: Path) -> None:
    data = base()
    cfg = load_params(ROOT / "params.yaml").config("noise2score").model_dump()
    group = next(k for k, v in cfg.items() if isinstance(v, dict))
    data["noise2score"]["default"] = deep_merge(data["noise2score"].get("default") or {}, {group: {"nonsense": 1}})
    with pytest.raises(ConfigError, match=rf"noise2score\[default\]\.{group}\.nonsense"):
        load_params(write_params(tmp_path, data))


def test_cli_refuses_bad_params_and_writes_nothing(tmp_path: Path) -> None:
    data = base()
    data["noise2score"]["smoke"] = {**(data["noise2score"].get("smoke") or {}), "seed": -1}
    write_params(tmp_path, data)
    proc = subprocess.run(
        [sys.executable, "-m", "components", "prepare", "noise2score"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "noise2score[smoke].seed" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no data, no mlflow.db


def test_scale_override_and_helpers(tmp_path: Path) -> None:
    params = load_params(ROOT / "params.yaml", scale="smoke")
    assert params.scale == "smoke"
    cfg = params.config("noise2score")
    flat = flatten(cfg)
    assert "seed" in flat and all("." in k or not isinstance(v, dict) for k, v in flat.items())
    assert config_hash(cfg) == config_hash(params.config("noise2score"))
    assert config_hash(cfg) != config_hash(params.config("noise2score", scale="paper"))
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
