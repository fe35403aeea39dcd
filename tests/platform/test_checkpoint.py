"""Checkpoints: atomic, pruned, config-bound, pickle-free."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from components.checkpoint import CONFIG_FILE, WEIGHTS_FILE, Checkpointer, export_model, load_export


def state(value: float) -> dict:
    gen = torch.Generator().manual_seed(1)
    return {"model": {"w": torch.full((3,), value)}, "rng": gen.get_state(), "step_list": [1, 2]}


def test_save_latest_and_prune(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, "abc", keep=2)
    assert ck.latest() is None
    for step in (10, 20, 30):
        ck.save(step, state(step), {"lr": 1.0})
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["step-00000020.pt", "step-00000030.pt"]
    latest = ck.latest()
    assert latest["step"] == 30 and torch.equal(latest["state"]["model"]["w"], torch.full((3,), 30.0))
    assert latest["config"] == {"lr": 1.0}


def test_other_config_is_not_resumed(tmp_path: Path) -> None:
    Checkpointer(tmp_path, "abc").save(5, state(1), {})
    assert Checkpointer(tmp_path, "other").latest() is None


def test_truncated_newest_falls_back_to_older(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, "abc")
    ck.save(1, state(1), {})
    newest = ck.save(2, state(2), {})
    newest.write_bytes(newest.read_bytes()[:100])  # as if another writer died mid-file
    assert ck.latest()["step"] == 1


class Evil:
    """Any object that only unpickling could rebuild."""


def test_unpicklable_payload_is_refused(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, "abc")
    path = tmp_path / "step-00000009.pt"
    torch.save({"step": 9, "config_hash": "abc", "config": {}, "state": {"x": Evil()}}, path)
    assert ck.latest() is None  # weights_only=True refuses arbitrary objects


def test_no_temp_files_left(tmp_path: Path) -> None:
    Checkpointer(tmp_path, "abc").save(1, state(1), {})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_export_roundtrip_and_replace(tmp_path: Path) -> None:
    out = tmp_path / "model"
    export_model(out, {"w": torch.arange(4.0)}, {"width": 8})
    export_model(out, {"w": torch.arange(5.0)}, {"width": 9})
    config, sd = load_export(out)
    assert config == {"width": 9} and torch.equal(sd["w"], torch.arange(5.0))
    assert {p.name for p in out.iterdir()} == {WEIGHTS_FILE, CONFIG_FILE}
    assert json.loads((out / CONFIG_FILE).read_text())["width"] == 9
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left


def test_load_export_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not an exported paperops model"):
        load_export(tmp_path)
