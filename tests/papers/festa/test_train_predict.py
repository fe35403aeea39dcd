"""A FeSTA training killed with kill -9 resumes to the weights of an uninterrupted one; predict
validates its input and keeps shapes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from components.contract import RunContext
from components.papers.festa import PAPER
from components.papers.festa.predict import CLASSES, classify, predict, segment, severity
from components.papers.festa.train import runs_dir

from .conftest import ROOT, tiny_cfg

TRAIN = """
import json, sys
from pathlib import Path
from components.contract import RunContext
from components.papers.festa.config import FeSTAConfig
from components.papers.festa.train import train
cfg = FeSTAConfig.model_validate_json(sys.argv[1])
train(cfg, RunContext("festa", Path(sys.argv[2]), seed=cfg.seed))
"""


def cfg_for_resume():
    cfg = tiny_cfg(rounds=6, finetune_rounds=2, checkpoint_every=2)
    return cfg.model_copy(
        update={"eval": cfg.eval.model_copy(update={"methods": ("festa", "local"), "gate_bytes": False})}
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("festa-ref")
    cfg = cfg_for_resume()
    ctx = RunContext("festa", root, seed=cfg.seed)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    return root, cfg


def test_resume_after_kill_9_equals_uninterrupted(trained, tmp_path: Path, caplog) -> None:
    ref_root, cfg = trained
    ctx = RunContext("festa", tmp_path, seed=cfg.seed)
    PAPER.prepare(cfg, ctx)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, cfg.model_dump_json(), str(tmp_path)], env=env)
    ckpts = ctx.checkpoint_dir / "festa_s0"
    deadline = time.monotonic() + 300
    while not (ckpts.is_dir() and any(ckpts.glob("step-*.pt"))):  # a finished checkpoint, not a .tmp one
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # the server dies mid-run; its clients lose their pairs and exit
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not ctx.model_dir.exists(), "killed before the export"
    assert any(ckpts.glob("step-*.pt"))
    with caplog.at_level(logging.INFO, logger="paperops.festa"):
        PAPER.train(cfg, RunContext("festa", tmp_path, seed=cfg.seed))
    assert any("resuming from round" in r.getMessage() for r in caplog.records)
    a_dir, b_dir = runs_dir(cfg, RunContext("festa", ref_root)), runs_dir(cfg, ctx)
    names = sorted(p.name for p in a_dir.glob("*.safetensors"))
    assert names == sorted(p.name for p in b_dir.glob("*.safetensors")) and len(names) == 4
    for name in [*names, "../../model/model.safetensors"]:
        a, b = load_file(str(a_dir / name)), load_file(str(b_dir / name))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), name
    info = json.loads((b_dir / "festa_s0.json").read_text())
    assert info["bytes_per_round"] == json.loads((a_dir / "festa_s0.json").read_text())["bytes_per_round"]


def test_predict_shapes_and_errors(trained) -> None:
    root, _ = trained
    model = PAPER.load(root / "models/festa/model")
    rng = np.random.default_rng(0)
    img = rng.random((40, 52), dtype=np.float32)
    c = classify(model, img)
    assert set(c["probabilities"]) == set(CLASSES) and abs(sum(c["probabilities"].values()) - 1) < 1e-5
    assert c["label"] in CLASSES
    s = segment(model, rng.random((40, 52, 3), dtype=np.float32))
    assert s["mask"].shape == (40, 52) and s["mask"].dtype == bool and 0 <= s["lesion_fraction"] <= 1
    assert 0 <= severity(model, img)["severity"] <= 1
    assert set(predict(model, PAPER.example_input())) == {"probabilities", "label"}
    for bad, msg in (
        (np.zeros((4, 4), np.float32), "sides"),
        (np.zeros((8, 8, 2), np.float32), "shape"),
        (np.full((16, 16), np.nan, np.float32), "non-finite"),
        (np.zeros((16, 16), object), "numeric"),
    ):
        with pytest.raises(ValueError, match=msg):
            classify(model, bad)
    with pytest.raises(ValueError, match="unknown task"):
        predict(model, img, task="depth")
