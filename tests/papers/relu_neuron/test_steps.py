"""The paper's steps and /analyze's core on the smoke config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.config import load_params
from components.contract import RunContext
from components.papers.relu_neuron import PAPER
from components.papers.relu_neuron.predict import analyze

ROOT = Path(__file__).resolve().parents[3]


def test_trained_neuron_fits_the_teacher_out_of_sample(tmp_path: Path) -> None:
    cfg = load_params(ROOT / "params.yaml", scale="smoke").config("relu_neuron")
    ctx = RunContext("relu_neuron", tmp_path)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    neuron = PAPER.load(ctx.model_dir)
    assert neuron.config["converged"] and neuron.config["support_vectors"]
    with np.load(ctx.data_dir / "test.npz") as z:
        assert np.mean((neuron(z["x"]) - z["y"]) ** 2) < 1e-10  # d = 2 teacher: recovered exactly


def test_analyze_reports_trajectory_and_support_vectors() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((15, 3))
    y = np.maximum(x @ np.array([1.0, -0.5, 0.2]), 0)
    out = analyze(x, y, 1e-3, seed=1)
    assert len(out["time"]) == len(out["norm"]) <= 200 and out["norm"][-1] > out["norm"][0]
    assert set(out["support_vectors"]) <= set(out["ever_active"]) and out["converged"]
    assert out["final_loss"] < 1e-10
    with pytest.raises(ValueError, match="finite"):
        analyze(np.full((3, 2), np.nan), np.zeros(3), 1e-3, 0)
    with pytest.raises(ValueError, match="y"):
        analyze(x, y[:-1], 1e-3, 0)
