"""The paper's steps on the smoke config: data files, resumable training, the gate's findings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.config import load_params
from components.contract import RunContext
from components.papers.fractional_lms import PAPER
from components.papers.fractional_lms.data import read_signal_file
from components.papers.fractional_lms.predict import identify

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def cfg():
    return load_params(ROOT / "params.yaml", scale="smoke").config("fractional_lms")


def test_train_resumes_to_the_same_weights(cfg, tmp_path: Path) -> None:
    ctx = RunContext("fractional_lms", tmp_path / "a")
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    full = PAPER.load(ctx.model_dir).weights
    # interrupt: keep only the first checkpoint, drop the export, train again
    ckpts = sorted(ctx.checkpoint_dir.glob("step-*.pt"))
    assert len(ckpts) == 2
    ckpts[-1].unlink()
    import shutil

    shutil.rmtree(ctx.model_dir)
    PAPER.train(cfg, ctx)
    assert np.array_equal(PAPER.load(ctx.model_dir).weights, full)
    assert np.allclose(full, cfg.data.plant, atol=0.2)


def test_real_signal_files(cfg, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(500)
    d = np.convolve(x, [0.5, -0.25])[:500]
    np.save(tmp_path / "sig.npy", np.stack([x, d], 1))
    (tmp_path / "sig.csv").write_text("x,d\n" + "\n".join(f"{a},{b}" for a, b in zip(x, d, strict=True)))
    for name in ("sig.npy", "sig.csv"):
        xr, dr = read_signal_file(tmp_path / name)
        assert np.allclose(xr, x) and np.allclose(dr, d)
    file_cfg = cfg.model_copy(
        update={
            "data": cfg.data.model_copy(update={"source": "file", "path": str(tmp_path / "sig.csv")}),
            "train": cfg.train.model_copy(update={"taps": 2}),
        }
    )
    ctx = RunContext("fractional_lms", tmp_path / "run")
    PAPER.prepare(file_cfg, ctx)
    assert json.loads((ctx.data_dir / "plant.json").read_text())["plant"] is None
    PAPER.train(file_cfg, ctx)
    assert np.allclose(PAPER.load(ctx.model_dir).weights, [0.5, -0.25], atol=0.05)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing column"):
        read_signal_file(tmp_path / "bad.csv")
    np.save(tmp_path / "nan.npy", np.full((20, 2), np.nan))
    with pytest.raises(ValueError, match="NaN"):
        read_signal_file(tmp_path / "nan.npy")


def test_identify_reports_divergence_clearly() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(300)
    d = np.convolve(x, [0.5, -0.5])[:300]
    ok = identify(x, d, 2, "lms", 0.05)
    assert np.allclose(ok["weights"], [0.5, -0.5], atol=0.05) and len(ok["mse_db"]) <= 500
    with pytest.raises(ValueError, match="published form"):
        identify(x, d, 2, "flms_published", 0.05, 0.05, 0.5)
    with pytest.raises(ValueError, match="too large"):
        identify(x * 100, d * 100, 2, "lms", 1.0)
    with pytest.raises(ValueError, match="same length"):
        identify(x, d[:-1], 2)


def test_gate_explains_failures() -> None:
    ok = {
        "published_min_broken_fraction": 1.0,
        "frozen_step_max_gap_db_2se": 0.05,
        "remedied_matched_fraction": 1.0,
        "remedied_max_speed_ratio_upper95": 1.02,
        "lms_emse_max_excess_rel_theory": -0.5,
        "flms_emse_max_excess_rel_theory": -0.5,
        "fsd_caputo_max_error_to_prediction": 0.0,
    }
    assert PAPER.gate(ok).passed
    gate = PAPER.gate(
        {
            **ok,
            "published_min_broken_fraction": 0.5,
            "frozen_step_max_gap_db_2se": 2.0,
            "remedied_max_speed_ratio_upper95": 1.5,
            "lms_emse_max_excess_rel_theory": 0.3,
        }
    )
    assert not gate.passed and len(gate.reasons) == 4
    assert any("95 % upper bound" in r for r in gate.reasons)
