"""Training resumes to the same weights; predict validates its input and keeps shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from components.config import load_params
from components.contract import RunContext
from components.papers.noise2score import PAPER
from components.papers.noise2score.predict import denoise, estimate
from tests.crash import Crash, crash_after

ROOT = Path(__file__).resolve().parents[3]


def tiny_cfg():
    cfg = load_params(ROOT / "params.yaml", scale="smoke").config("noise2score")
    return cfg.model_copy(
        update={"train": cfg.train.model_copy(update={"steps": 12, "baseline_steps": 6, "checkpoint_every": 4})}
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("n2s")
    cfg = tiny_cfg()
    ctx = RunContext("noise2score", root, seed=cfg.seed)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    return root, cfg


def test_resume_equals_uninterrupted(trained, tmp_path: Path) -> None:
    root, cfg = trained
    PAPER.prepare(cfg, RunContext("noise2score", tmp_path, seed=cfg.seed))
    ctx = RunContext("noise2score", tmp_path, seed=cfg.seed, progress=crash_after(14))
    with pytest.raises(Crash):
        PAPER.train(cfg, ctx)  # dies in the baseline phase (steps 12-17), after the checkpoint at step 12
    assert not ctx.model_dir.exists()
    PAPER.train(cfg, RunContext("noise2score", tmp_path, seed=cfg.seed))
    for sub in ("model", "baseline"):
        a = load_file(str(root / "models/noise2score" / sub / "model.safetensors"))
        b = load_file(str(tmp_path / "models/noise2score" / sub / "model.safetensors"))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), sub


def test_predict_shapes_and_errors(trained) -> None:
    root, _ = trained
    model = PAPER.load(root / "models/noise2score/model")
    rng = np.random.default_rng(0)
    for shape in ((20, 28), (20, 28, 1), (20, 28, 3)):
        img = rng.random(shape, dtype=np.float32)
        out = denoise(model, img, noise="gaussian", level=25)
        assert out["image"].shape == shape and out["image"].dtype == np.float32
        assert 0 <= out["image"].min() and out["image"].max() <= 1
    blind = denoise(model, rng.random((16, 16, 3), dtype=np.float32))
    assert blind["family"] in model.families and blind["level"] > 0
    est = estimate(model, rng.random((16, 16), dtype=np.float32))
    assert set(est) == {"family", "level", "power"} and est["family"] in model.families and est["level"] > 0
    levels = [denoise(model, img, noise="gaussian")["level"] for img in (rng.random((16, 16), dtype=np.float32),)]
    lo, hi = model.config["noise"]["gaussian"]
    assert all(lo * (1 - 1e-9) <= lv <= hi * (1 + 1e-9) for lv in levels)  # searched over the training range
    for kwargs, msg in (
        ({"noise": "laplace"}, "unknown noise"),
        ({"level": -1.0}, "positive"),
        ({"level": float("nan")}, "positive"),
    ):
        with pytest.raises(ValueError, match=msg):
            denoise(model, rng.random((16, 16), dtype=np.float32), **kwargs)
    for bad, msg in ((np.zeros((4, 4, 2), np.float32), "shape"), (np.full((4, 4), np.nan, np.float32), "non-finite")):
        with pytest.raises(ValueError, match=msg):
            denoise(model, bad)
