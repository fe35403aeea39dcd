"""Checkpoints: atomic, pruned, config-bound, pickle-free."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from components.checkpoint import CONFIG_FILE, WEIGHTS_FILE, Checkpointer, export_model, hooked, load_export


def state(value: float) -> dict:
    gen = torch.Generator().manual_seed(1)
    return {"model": {"w": torch.full((3,), value)}, "rng": gen.get_state(), "step_list": [1, 2]}


def test_save_latest_and_prune(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, "abc", keep=2)
    assert ck.latest() is None
    for step in (10, 20, 30):
        ck.save(step, state(step), {"lr": 1.0})
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["step-00000020-abc.pt", "step-00000030-abc.pt"]
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
    path = tmp_path / "step-00000009-abc.pt"
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


def test_pruning_is_per_config(tmp_path: Path) -> None:
    """Leftovers of another config at higher steps neither prune nor shadow this config's progress."""
    old = Checkpointer(tmp_path, "old", keep=2)
    for step in (800, 900):
        old.save(step, state(step), {})
    new = Checkpointer(tmp_path, "new", keep=2)
    for step in (10, 20, 30):
        new.save(step, state(step), {})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["step-00000020-new.pt", "step-00000030-new.pt", "step-00000800-old.pt", "step-00000900-old.pt"]
    assert new.latest()["step"] == 30  # as after a kill -9: the new run resumes from its own step 30
    assert old.latest()["step"] == 900
    new.clear()
    assert old.latest()["step"] == 900 and new.latest() is None


def test_unhashed_legacy_name_still_resumes(tmp_path: Path) -> None:
    torch.save({"step": 7, "config_hash": "abc", "config": {}, "state": state(7)}, tmp_path / "step-00000007.pt")
    assert Checkpointer(tmp_path, "abc").latest()["step"] == 7
    assert Checkpointer(tmp_path, "xyz").latest() is None


def test_bad_hash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="letters or digits"):
        Checkpointer(tmp_path, "../x")


class Hook:
    """Records the calls a tracking logger gets from checkpoints."""

    def __init__(self) -> None:
        self.saves: list[int] = []
        self.resumes: list[tuple[int, dict]] = []

    def before_save(self, step: int) -> dict:
        self.saves.append(step)
        return {"run_id": "r1", "steps": {"loss": step}}

    def after_resume(self, step: int, stored: dict) -> None:
        self.resumes.append((step, stored))


def test_hook_flushes_at_every_save_and_hears_the_resume(tmp_path: Path) -> None:
    hook = Hook()
    with hooked(tmp_path, hook):
        ck = Checkpointer(tmp_path, "abc")
        ck.save(10, state(1), {})
        ck.save(20, state(2), {})
        assert ck.latest()["step"] == 20
    assert hook.saves == [10, 20]
    assert hook.resumes == [(20, {"run_id": "r1", "steps": {"loss": 20}})]
    Checkpointer(tmp_path, "abc").save(30, state(3), {})  # outside the block: no hook
    assert hook.saves == [10, 20]
