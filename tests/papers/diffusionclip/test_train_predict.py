"""Training resumes after kill -9 to the weights of an uninterrupted run; the fine-tuning moves the
model; predict bounds its inputs; the gate says why; the folder loader reads real images."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from components.config import load_params
from components.contract import RunContext
from components.papers.diffusionclip import PAPER
from components.papers.diffusionclip.evaluate import gate
from components.papers.diffusionclip.predict import manipulate, targets

ROOT = Path(__file__).resolve().parents[3]


def smoke_cfg(**finetune):
    cfg = load_params(ROOT / "params.yaml", scale="smoke").config("diffusionclip")
    return cfg.model_copy(update={"finetune": cfg.finetune.model_copy(update=finetune)}) if finetune else cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("dclip")
    cfg = smoke_cfg()
    ctx = RunContext("diffusionclip", root, seed=cfg.seed)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    return root, cfg


SCRIPT = """
import sys, time
from pathlib import Path
from components.config import load_params
from components.contract import RunContext
from components.papers.diffusionclip import PAPER

def slow(iterable, total=None, desc="", **_):
    for item in iterable:
        time.sleep(0.4)  # time for the test to see a checkpoint and kill between two
        yield item

cfg = load_params(Path(sys.argv[2]), scale="smoke").config("diffusionclip")
PAPER.train(cfg, RunContext("diffusionclip", Path(sys.argv[1]), seed=cfg.seed, progress=slow))
"""


def test_kill_9_in_fine_tuning_resumes_to_the_uninterrupted_weights(trained, tmp_path: Path) -> None:
    root, cfg = trained
    ctx = RunContext("diffusionclip", tmp_path, seed=cfg.seed)
    PAPER.prepare(cfg, ctx)
    ctx.block_dir("clip")  # the same standalone CLIP block as the uninterrupted run
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(ROOT / "params.yaml")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    ddpm_steps = cfg.train.steps
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        steps = sorted(int(p.stem.split("-")[1]) for p in ctx.checkpoint_dir.glob("step-*.pt"))
        if steps and steps[-1] > ddpm_steps:  # a checkpoint inside the fine-tuning phases
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not ctx.model_dir.exists()
    PAPER.train(cfg, RunContext("diffusionclip", tmp_path, seed=cfg.seed))
    a = load_file(str(root / "models/diffusionclip/model/model.safetensors"))
    b = load_file(str(tmp_path / "models/diffusionclip/model/model.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), [k for k in a if not (a[k] == b[k]).all()][:3]


def test_fine_tuning_changes_the_model_and_ratio_zero_is_the_original(trained) -> None:
    root, _ = trained
    model = PAPER.load(root / "models/diffusionclip/model")
    w = load_file(str(root / "models/diffusionclip/model/model.safetensors"))
    moved = [
        k
        for k in w
        if k.startswith("ft.smiling.") and not (w[k] == w["original." + k.removeprefix("ft.smiling.")]).all()
    ]
    assert moved, "fine-tuning left the weights unchanged"
    face = PAPER.example_input()["image"]
    zero = manipulate(model, face, "smiling", strength=0.0)
    full = manipulate(model, face, "smiling", strength=1.0)
    assert zero.shape == full.shape == (16, 16, 3) and not np.array_equal(zero, full)
    assert np.array_equal(zero, manipulate(model, face, "blue", strength=0.0))  # r = 0: the original model only
    assert np.array_equal(full, manipulate(model, face, "smiling"))  # deterministic
    assert [t["name"] for t in targets(model)] == ["smiling", "blue"]


def test_predict_refuses_bad_input_and_stops_on_budget(trained) -> None:
    root, _ = trained
    model = PAPER.load(root / "models/diffusionclip/model")
    face = PAPER.example_input()["image"]
    out = PAPER.predict(model, {"image": face, "target": "blue", "strength": 0.5, "t0": 200})
    assert out.shape == (16, 16, 3) and 0 <= out.min() and out.max() <= 1
    bad = [
        {"image": face, "target": "zombie"},
        {"image": face, "strength": 1.5},
        {"image": face, "strength": float("nan")},
        {"image": face, "t0": 0},
        {"image": face, "t0": 1000},
        {"image": np.full((16, 16, 3), np.nan)},
        {"image": np.zeros((4, 40, 3))},
        {"image": np.zeros((16, 16, 4))},
        {"image": face, "steps": 3},
    ]
    for inputs in bad:
        with pytest.raises(ValueError):
            PAPER.predict(model, inputs)
    calls = iter(range(1000))
    with pytest.raises(TimeoutError):
        manipulate(model, face, should_stop=lambda: next(calls) >= 3)


def test_gate_passes_only_on_the_claim() -> None:
    good = {
        "gate/z": 2.0,
        "gate/recon_mae_bound": 0.03,
        "gate/drift_bound": 0.12,
        "gate/judged": 1.0,
        "gate/recon_mae": 0.01,
        "gate/recon_stoch_minus_ddim": 0.05,
        "gate/recon_stoch_minus_ddim_se": 0.01,
        "edit/smiling/d_score": 0.3,
        "edit/smiling/d_score_se": 0.05,
        "edit/smiling/drift": 0.05,
        "edit/smiling/d_judge": 0.4,
        "edit/smiling/d_judge_se": 0.1,
        "edit/smiling/ratio_worst_step": 0.01,
    }
    assert gate(good).passed
    for key, value, words in [
        ("gate/recon_mae", 0.05, "reconstruction MAE"),
        ("gate/recon_stoch_minus_ddim", 0.01, "stochastic - DDIM"),
        ("edit/smiling/d_score", 0.05, "zero-shot score change"),
        ("edit/smiling/drift", 0.2, "L1 drift"),
        ("edit/smiling/d_judge", 0.1, "independent judge"),
        ("edit/smiling/ratio_worst_step", -0.01, "model_ratio sweep"),
    ]:
        verdict = gate({**good, key: value})
        assert not verdict.passed and any(words in r for r in verdict.reasons), (key, verdict.reasons)
    assert not gate({k: v for k, v in good.items() if not k.startswith("edit/")}).passed


def test_folder_data(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray((rng.random((40, 30, 3)) * 255).astype(np.uint8)).save(folder / f"f{i}.png")
    cfg = smoke_cfg()
    cfg = cfg.model_copy(
        update={"data": cfg.data.model_copy(update={"source": "folder", "path": str(folder), "test_images": 2})}
    )
    ctx = RunContext("diffusionclip", tmp_path / "run")
    PAPER.prepare(cfg, ctx)
    train, test = np.load(ctx.data_dir / "train.npy"), np.load(ctx.data_dir / "test.npy")
    assert train.shape == (3, 3, 16, 16) and test.shape == (2, 3, 16, 16) and train.dtype == np.uint8
