"""Training falls and resumes bit-exactly (an in-process crash and a real kill -9); the gate on
synthetic metrics; predict keeps shapes and refuses bad input; the real-data loader on .npy and
NIfTI folders the test writes; the 3-D variant end to end on small volumes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from components.config import load_params
from components.contract import RunContext
from components.papers.diffusemorph import PAPER
from components.papers.diffusemorph.data import folder_pairs, load_split
from components.papers.diffusemorph.evaluate import gate
from components.papers.diffusemorph.predict import register, synthesize
from tests.crash import Crash, Recorder, crash_after

ROOT = Path(__file__).resolve().parents[3]
NAME = "diffusemorph"


def tiny_cfg(**train):
    cfg = load_params(ROOT / "params.yaml", scale="smoke").config(NAME)
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 8, "checkpoint_every": 3, **train})})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("dm")
    cfg = tiny_cfg()
    ctx = RunContext(NAME, root, seed=cfg.seed)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    return root, cfg


def test_resume_equals_uninterrupted(trained, tmp_path: Path) -> None:
    root, cfg = trained
    ctx = RunContext(NAME, tmp_path, seed=cfg.seed, progress=crash_after(7))
    PAPER.prepare(cfg, ctx)
    with pytest.raises(Crash):
        PAPER.train(cfg, ctx)  # dies after the checkpoint at step 6
    assert not ctx.model_dir.exists()
    PAPER.train(cfg, RunContext(NAME, tmp_path, seed=cfg.seed))
    a = load_file(str(root / "models" / NAME / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "models" / NAME / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert {k.split(".")[0] for k in a} == {"score", "field", "baseline"}


KILL_SCRIPT = """
import sys
from pathlib import Path
from components.config import load_params
from components.contract import RunContext
from components.papers.diffusemorph import PAPER
cfg = load_params(sys.argv[1], scale="smoke").config("diffusemorph")
cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": int(sys.argv[3]), "checkpoint_every": 2})})
ctx = RunContext("diffusemorph", Path(sys.argv[2]), seed=cfg.seed)
PAPER.train(cfg, ctx)
"""


def _run(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(ROOT / "params.yaml"), *args], env=env, **kw)


@pytest.mark.e2e
def test_kill_9_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    steps = 30  # killed right after the checkpoint at step 4 (polled every 20 ms): 26 steps to spare
    crashed, straight = tmp_path / "a", tmp_path / "b"
    PAPER.prepare(tiny_cfg(), RunContext(NAME, crashed, seed=0))  # in-process: two interpreters fewer
    shutil.copytree(crashed / "data", straight / "data")
    proc = _run(
        [str(crashed), str(steps), "train"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    folder = crashed / "models" / NAME / "checkpoints"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        done = sorted(int(p.stem.split("-")[1]) for p in folder.glob("step-*.pt")) if folder.is_dir() else []
        if done and 4 <= done[-1] < steps:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed: raise steps"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (crashed / "models" / NAME / "model").exists()
    assert _run([str(crashed), str(steps)]).wait() == 0
    assert _run([str(straight), str(steps)]).wait() == 0
    a = load_file(str(crashed / "models" / NAME / "model" / "model.safetensors"))
    b = load_file(str(straight / "models" / NAME / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_losses_fall(tmp_path: Path) -> None:
    """Over 40 steps the score loss (MSE to eps) and the baseline's similarity loss (-lambda LNCC) fall."""
    cfg = tiny_cfg(steps=40, log_every=10, checkpoint_every=1000, lr=2e-3)
    rec = Recorder()
    ctx = RunContext(NAME, tmp_path, seed=cfg.seed, logger=rec)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    pix, base = rec.points["loss/pix"], rec.points["loss/baseline_sim"]
    assert len(pix) == 4 and pix[-1] < 0.5 * pix[0]
    assert base[-1] < base[0]  # -lambda LNCC: lower is better aligned


def _metrics(**over: float) -> dict[str, float]:
    m = {
        "gate/z": 2.0,
        "gate/folding_margin": 0.1,
        "gate/max_step_share": 0.6,
        "gate/dice_minus_identity": 0.05,
        "gate/dice_minus_identity_se": 0.01,
        "gate/dice_minus_voxelmorph": -0.01,
        "gate/dice_minus_voxelmorph_se": 0.01,
        "gate/folding_minus_voxelmorph": 0.0,
        "gate/folding_minus_voxelmorph_se": 0.01,
        "gate/eta_disp_gain": 0.5,
        "gate/eta_disp_gain_se": 0.05,
        "gate/eta_disp_monotone": 1.0,
        "gate/eta_disp_max_step_share": 0.3,
        "gate/eta_max_folding": 0.0,
        "voxelmorph/folding": 0.0,
    }
    return {**m, **over}


def test_gate_on_synthetic_metrics() -> None:
    assert gate(_metrics()).passed
    failing = {
        "identity": {"gate/dice_minus_identity": 0.015},  # within 2 se of identity
        "baseline": {"gate/dice_minus_voxelmorph": -0.03},  # worse than the baseline beyond noise
        "folding": {"gate/folding_minus_voxelmorph": 0.2},  # more folding than noise + margin allow
        "no continuum": {"gate/eta_disp_gain": 0.05},
        "not monotone": {"gate/eta_disp_monotone": 0.0},
        "a jump": {"gate/eta_disp_max_step_share": 0.9},
        "folding at an eta": {"gate/eta_max_folding": 0.5},
    }
    for name, over in failing.items():
        verdict = gate(_metrics(**over))
        assert not verdict.passed and len(verdict.reasons) == 1, name
    assert gate(_metrics(**{"gate/dice_minus_voxelmorph": -0.015})).passed  # within noise of the baseline
    # where the Dice-vs-baseline part is not gated (the default scale), only that part is waived
    waived = {"gate/dice_vs_baseline_gated": 0.0}
    assert gate(_metrics(**{"gate/dice_minus_voxelmorph": -0.03}, **waived)).passed
    assert not gate(_metrics(**{"gate/dice_minus_identity": 0.015}, **waived)).passed


def test_evaluate_writes_the_report(trained) -> None:
    root, cfg = trained
    metrics = PAPER.evaluate(cfg, RunContext(NAME, root, seed=cfg.seed))
    for k in ("diffusemorph", "voxelmorph", "tvl1", "identity", "eta_0", "eta_1"):
        assert 0.0 <= metrics[f"{k}/dice"] <= 1.0 and np.isfinite(metrics[f"{k}/dice_se"])
    assert metrics["identity/disp"] == 0.0 and metrics["tvl1/disp"] > 0.0
    assert metrics["gate/dice_minus_identity"] == pytest.approx(metrics["diffusemorph/dice"] - metrics["identity/dice"])
    report = (root / "reports" / NAME / "results.md").read_text()
    assert "VoxelMorph-style" in report and "eta" in report and "TV-L1" in report
    assert (root / "reports" / NAME / "results.csv").is_file()
    assert (root / "reports" / NAME / "figures" / "eta_continuum.png").is_file()


def test_register_any_size_and_bad_input(trained) -> None:
    root, _ = trained
    model = PAPER.load(root / "models" / NAME / "model")
    rng = np.random.default_rng(0)
    m, f = rng.random((40, 56)).astype(np.float32), rng.random((40, 56)).astype(np.float32)
    out = register(model, m, f, eta=0.5)
    assert out["warped"].shape == (40, 56) and out["flow"].shape == (2, 40, 56)
    assert 0 <= out["folding_pct"] <= 100 and out["warped"].min() >= 0 and out["warped"].max() <= 1
    rgb = register(model, rng.random((40, 56, 3)), f)
    assert rgb["warped"].shape == (40, 56, 3)
    zero = register(model, m, f, eta=0.0)
    one = register(model, m, f, eta=1.0)
    assert zero["flow"].shape == one["flow"].shape
    assert PAPER.predict(model, PAPER.example_input())["flow"].shape == (2, 32, 32)
    bad = [
        lambda: register(model, m, f[:, :50]),
        lambda: register(model, m, f, eta=1.5),
        lambda: register(model, m, f, eta=float("nan")),
        lambda: register(model, np.full((40, 56), np.nan), f),
        lambda: register(model, np.zeros((2000, 8)), np.zeros((2000, 8))),
        lambda: register(model, np.zeros((4, 4, 4, 4)), np.zeros((4, 4, 4, 4))),
        lambda: synthesize(model, m, f, t0=0),
    ]
    for fn in bad:
        with pytest.raises(ValueError):
            fn()
    a, b = synthesize(model, m, f, t0=5, seed=1), synthesize(model, m, f, t0=5, seed=1)
    assert a.shape == (32, 32) and np.array_equal(a, b) and 0 <= a.min() and a.max() <= 1
    with pytest.raises(TimeoutError):
        synthesize(model, m, f, t0=5, should_stop=lambda: True)


def _blob(shape: tuple[int, ...], centre: tuple[float, ...], r: float) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    return (sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) <= r * r).astype(np.float32)


def test_folder_loader_npy_and_nifti(tmp_path: Path) -> None:
    import nibabel as nib

    cfg = tiny_cfg()
    d2 = tmp_path / "npy"
    (d2 / "images").mkdir(parents=True)
    (d2 / "labels").mkdir()
    for i in range(4):
        lab = _blob((40, 48), (20 + i, 24), 10) * 7  # label value 7: mapped to class 1
        np.save(d2 / "images" / f"s{i}.npy", (lab * 30 + 5).astype(np.float32))
        np.save(d2 / "labels" / f"s{i}.npy", lab.astype(np.int16))
    pairs = folder_pairs(d2, cfg.data)
    assert pairs["moving"].shape == (3, 32, 32) and pairs["fixed_label"].shape == (3, 32, 32)
    assert set(np.unique(pairs["moving_label"])) == {0, 1}
    assert pairs["moving"].min() == pytest.approx(-1) and pairs["moving"].max() == pytest.approx(1)
    d3 = tmp_path / "nii"
    (d3 / "images").mkdir(parents=True)
    (d3 / "labels").mkdir()
    for i in range(3):
        lab = _blob((20, 24, 18), (10, 12 + i, 9), 6) + _blob((20, 24, 18), (4, 4, 4), 2) * 2
        nib.save(nib.Nifti1Image(lab * 40.0, np.eye(4)), str(d3 / "images" / f"p{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab.astype(np.int16), np.eye(4)), str(d3 / "labels" / f"p{i}.nii.gz"))
    slices = folder_pairs(d3, cfg.data)  # 2-D: the central slice along the last axis
    assert slices["moving"].shape == (2, 32, 32)
    vol_cfg = cfg.data.model_copy(update={"dims": 3, "size": 16, "depth": 16})
    vols = folder_pairs(d3, vol_cfg)
    assert vols["moving"].shape == (2, 16, 16, 16) and set(np.unique(vols["fixed_label"])) == {0, 1, 2}
    run = tmp_path / "run"
    folder_cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": "folder", "path": str(d2)})})
    PAPER.prepare(folder_cfg, RunContext(NAME, run, seed=0))
    train, test = load_split(run / "data" / NAME, "train"), load_split(run / "data" / NAME, "test")
    assert len(train["moving"]) == 2 and len(test["moving"]) == 1 and train["moving"].shape[1:] == (1, 32, 32)
    np.save(d2 / "labels" / "s1.npy", np.zeros((10, 10), np.int16))
    with pytest.raises(ValueError, match="differ in shape"):
        folder_pairs(d2, cfg.data)
    (d2 / "labels" / "s1.npy").unlink()
    with pytest.raises(FileNotFoundError, match="no label map"):
        folder_pairs(d2, cfg.data)
    with pytest.raises(ValueError, match="3-D"):
        folder_pairs(d2, vol_cfg)  # 2-D arrays for a 3-D run


def test_3d_variant_end_to_end(tmp_path: Path) -> None:
    """The 3-D networks, warp and losses train and evaluate on small synthetic volumes (16^3)."""
    cfg = tiny_cfg(steps=4, batch_size=2, checkpoint_every=2)
    data = cfg.data.model_copy(update={"dims": 3, "size": 16, "depth": 16, "train_pairs": 4, "test_pairs": 3})
    model = cfg.model.model_copy(update={"encoder_nc": (4, 8, 8, 8, 8), "decoder_nc": (8, 8, 8, 4, 4)})
    cfg = cfg.model_copy(
        update={"data": data, "model": model, "eval": cfg.eval.model_copy(update={"etas": (0.0, 1.0)})}
    )
    ctx = RunContext(NAME, tmp_path, seed=0)
    rec = Recorder()
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, RunContext(NAME, tmp_path, seed=0, logger=rec))
    assert all(np.isfinite(v).all() for v in rec.points.values())
    metrics = PAPER.evaluate(cfg, ctx)
    assert 0 <= metrics["diffusemorph/dice"] <= 1 and 0 <= metrics["diffusemorph/folding"] <= 100
    model3 = PAPER.load(ctx.model_dir)
    assert model3.dims == 3
    vol = load_split(ctx.data_dir, "test")["moving"][0, 0].numpy() * 0.5 + 0.5
    out = register(model3, vol[:, :, :12], vol[:, :, :12])  # any shape: resized to 16^3 and back
    assert out["flow"].shape == (3, 16, 16, 12) and out["warped"].shape == (16, 16, 12)
    with torch.no_grad():
        _, flow = model3.field(torch.zeros(1, 2, 16, 16, 16))
    assert flow.shape == (1, 3, 16, 16, 16)
