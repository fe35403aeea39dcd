"""Training learns, a killed run resumes bit-exactly (in-process crash and a real kill -9), predict
keeps shapes and refuses bad input, and the real-data path reads .npy / NIfTI volumes and PNGs."""

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
from components.papers.switchable_cyclegan import PAPER
from components.papers.switchable_cyclegan.evaluate import gate
from components.papers.switchable_cyclegan.predict import predict
from tests.crash import Crash, Recorder, crash_after

ROOT = Path(__file__).resolve().parents[3]
NAME = "switchable_cyclegan"


def tiny_cfg(**train):
    cfg = load_params(ROOT / "params.yaml", scale="smoke").config(NAME)
    return cfg.model_copy(
        update={"train": cfg.train.model_copy(update={"steps": 8, "baseline_steps": 6, "checkpoint_every": 3, **train})}
    )


def _weights(root: Path) -> dict:
    out = {}
    for sub in ("model", "baseline"):
        out.update(
            {f"{sub}/{k}": v for k, v in load_file(str(root / "models" / NAME / sub / "model.safetensors")).items()}
        )
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("scg")
    cfg = tiny_cfg()
    ctx = RunContext(NAME, root, seed=cfg.seed)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    return root, cfg


def test_resume_equals_uninterrupted(trained, tmp_path: Path) -> None:
    root, cfg = trained
    ctx = RunContext(NAME, tmp_path, seed=cfg.seed, progress=crash_after(10))
    PAPER.prepare(cfg, ctx)
    with pytest.raises(Crash):
        PAPER.train(cfg, ctx)  # dies in the baseline phase, after the checkpoint at step 9 (pools full)
    assert not ctx.model_dir.exists()
    PAPER.train(cfg, RunContext(NAME, tmp_path, seed=cfg.seed))
    a, b = _weights(root), _weights(tmp_path)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert any(k.startswith("model/G.code.") for k in a) and any(k.startswith("baseline/G_BA.") for k in a)


KILL_SCRIPT = """
import sys
from pathlib import Path
from components.config import load_params
from components.contract import RunContext
from components.papers.switchable_cyclegan import PAPER
cfg = load_params(sys.argv[1], scale="smoke").config("switchable_cyclegan")
train = cfg.train.model_copy(update={"steps": int(sys.argv[3]), "baseline_steps": 0, "checkpoint_every": 2})
cfg = cfg.model_copy(update={"train": train})
ctx = RunContext("switchable_cyclegan", Path(sys.argv[2]), seed=cfg.seed)
if sys.argv[4] == "prepare":
    PAPER.prepare(cfg, ctx)
else:
    PAPER.train(cfg, ctx)
"""


def _run(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(ROOT / "params.yaml"), *args], env=env, **kw)


@pytest.mark.e2e
def test_kill_9_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    steps = 150  # long enough on 2 cores to be killed between two checkpoints
    crashed, straight = tmp_path / "a", tmp_path / "b"
    for root in (crashed, straight):
        assert _run([str(root), str(steps), "prepare"]).wait() == 0
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
    assert _run([str(crashed), str(steps), "train"]).wait() == 0
    assert _run([str(straight), str(steps), "train"]).wait() == 0
    a = load_file(str(crashed / "models" / NAME / "model" / "model.safetensors"))
    b = load_file(str(straight / "models" / NAME / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_cycle_and_identity_losses_fall(tmp_path: Path) -> None:
    cfg = tiny_cfg(steps=40, baseline_steps=0, log_every=5, checkpoint_every=1000, lr=2e-3)
    rec = Recorder()
    ctx = RunContext(NAME, tmp_path, seed=cfg.seed, logger=rec)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    for key in ("loss/switchable_cycle", "loss/switchable_identity"):
        pts = rec.points[key]
        assert np.mean(pts[-2:]) < 0.7 * pts[0], (key, pts)


def test_predict_shapes_and_errors(trained) -> None:
    root, _ = trained
    model = PAPER.load(root / "models" / NAME / "model")
    rng = np.random.default_rng(0)
    s = rng.random((13, 18)).astype(np.float32)
    assert predict(model, s, 0.5).shape == (13, 18)
    vol = rng.random((9, 10, 12)).astype(np.float32)
    out = predict(model, vol, 1.0)
    assert out.shape == vol.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert predict(model, (s * 255).astype(np.uint8)).shape == s.shape
    assert PAPER.predict(model, PAPER.example_input()).shape == (32, 32)
    baseline = PAPER.load(root / "models" / NAME / "baseline")
    assert predict(baseline, s).shape == s.shape
    bad = [
        lambda: predict(model, s, 1.5),
        lambda: predict(model, s, float("nan")),
        lambda: predict(model, s, True),
        lambda: predict(model, np.full((8, 8), np.nan, np.float32)),
        lambda: predict(model, s * 3),
        lambda: predict(model, rng.random((2000, 8))),
        lambda: predict(model, rng.random((300, 8, 8))),
        lambda: predict(model, rng.random((3, 8))),
        lambda: predict(model, rng.random((4, 4, 4, 4))),
        lambda: predict(model, np.array([["a"] * 8] * 8)),
    ]
    for fn in bad:
        with pytest.raises(ValueError):
            fn()


def test_gate_reads_the_claim() -> None:
    good = {
        "has_truth": 1.0,
        "gate/z": 2.0,
        "alpha_1/d_psnr": 1.0,
        "alpha_1/d_psnr_se": 0.1,
        "monotone/psnr_worst_step_z": 0.5,
        "monotone/sharpness_worst_step_z": 3.0,
        "monotone/sharpness_range_z": 9.0,
    }
    assert gate(good).passed
    assert not gate({**good, "alpha_1/d_psnr_se": 0.6}).passed  # gain within noise
    assert not gate({**good, "monotone/psnr_worst_step_z": -2.5}).passed  # falls along alpha
    assert not gate({**good, "has_truth": 0.0}).passed


def test_real_data_paths(tmp_path: Path) -> None:
    import nibabel as nib
    from PIL import Image

    vols, imgs = tmp_path / "vols", tmp_path / "imgs"
    vols.mkdir()
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(vols / f"v{i}.npy", (rng.random((20, 18, 16)) * 100).astype(np.float32))
    nib.save(nib.Nifti1Image((rng.random((16, 20, 18)) * 7).astype(np.float32), np.eye(4)), str(vols / "v2.nii.gz"))
    for i in range(2):
        Image.fromarray((rng.random((24, 30, 3)) * 255).astype(np.uint8)).save(imgs / f"im{i}.png")
    np.save(imgs / "im2.npy", rng.random((20, 20)))
    cfg = load_params(ROOT / "params.yaml", scale="smoke").config(NAME)
    data = cfg.data.model_copy(
        update={"source": "folder", "volumes_path": str(vols), "images_path": str(imgs), "test_volumes": 1}
    )
    cfg = cfg.model_copy(update={"data": data, "train": cfg.train.model_copy(update={"steps": 2, "baseline_steps": 0})})
    ctx = RunContext(NAME, tmp_path / "run", seed=0)
    PAPER.prepare(cfg, ctx)
    a, b = np.load(ctx.data_dir / "train_a.npy"), np.load(ctx.data_dir / "train_b.npy")
    assert a.shape == b.shape == (32, 16, 16) and 0 <= a.min() and a.max() <= 1 and 0 <= b.min() and b.max() <= 1
    tests = list((ctx.data_dir / "test").glob("*.npy"))
    assert len(tests) == 1 and not any(p.name.endswith(".truth.npy") for p in tests)
    PAPER.train(cfg, ctx)
    metrics = PAPER.evaluate(cfg, ctx)
    assert metrics["has_truth"] == 0.0 and "alpha_1/sharpness" in metrics and "alpha_1/psnr" not in metrics
    assert not gate(metrics).passed


def test_official_switch_assignment_and_public_alpha(trained) -> None:
    """Training enhances with the network's plain-IN path (alpha_net = 0, official Model.py ``fake_H =
    netG(real_S, alpha=0.0)``); predict's public alpha = 1 is that direction, alpha = 0 the other."""
    import torch

    from components.papers.switchable_cyclegan.model import network_alpha
    from components.papers.switchable_cyclegan.train import CycleState

    root, cfg = trained
    st = CycleState("switchable", cfg, RunContext(NAME, root, seed=cfg.seed), seed=0)
    x = torch.rand(2, 1, 16, 16)
    g_ab, g_ba = st.directions()
    with torch.no_grad():
        assert torch.equal(g_ab(x), st.gens["G"](x, 0.0)) and torch.equal(g_ba(x), st.gens["G"](x, 1.0))
    model = PAPER.load(root / "models" / NAME / "model")
    assert model.config["enhance_net_alpha"] == 0.0
    net = model.nets["G"]
    s = np.random.default_rng(1).random((16, 16)).astype(np.float32)
    t = torch.from_numpy(s)[None, None]
    with torch.no_grad():
        for public, net_alpha in ((1.0, 0.0), (0.0, 1.0), (0.25, 0.75)):
            want = net(t, net_alpha).clamp(0, 1)[0, 0].numpy()
            np.testing.assert_allclose(predict(model, s, public), want, atol=1e-6)
        assert not np.allclose(net(t, 0.0).numpy(), net(t, 1.0).numpy())  # the two ends differ
    # an export from before the swap (no enhance_net_alpha) enhanced at alpha_net = 1: kept as it was
    assert network_alpha(1.0, 1.0) == 1.0 and network_alpha(0.25, 1.0) == 0.25 and network_alpha(0.25) == 0.75
    legacy = type(model)({k: v for k, v in model.config.items() if k != "enhance_net_alpha"}, model.nets)
    with torch.no_grad():
        np.testing.assert_allclose(predict(legacy, s, 1.0), net(t, 1.0).clamp(0, 1)[0, 0].numpy(), atol=1e-6)


def test_predict_stops_when_the_budget_runs_out(trained) -> None:
    root, _ = trained
    model = PAPER.load(root / "models" / NAME / "model")
    with pytest.raises(TimeoutError):
        predict(model, np.zeros((8, 8, 8), np.float32), 1.0, should_stop=lambda: True)


def test_exported_weights_are_the_ema_with_warm_up(trained) -> None:
    """With ema_decay > 0 a phase exports w_t = d_t w_{t-1} + (1 - d_t) theta_t, d_t = min(d, (1+t)/(10+t)),
    w_0 = the initial weights (blocks.training.phase.ema_update); with 0, the last iterate."""
    import torch

    from components.papers.switchable_cyclegan.data import load_train
    from components.papers.switchable_cyclegan.train import CycleState, train_step

    root, cfg = trained
    assert cfg.train.ema_decay == 0.9  # the smoke scale exercises the EMA (and its checkpointing above)
    ctx = RunContext(NAME, root, seed=cfg.seed)
    a, b = load_train(ctx.data_dir)
    st = CycleState("switchable", cfg, ctx, seed=0)
    want = {k: v.detach().clone() for k, v in st.gens["G"].state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    for t in range(1, 4):
        train_step(st, a[:2], b[:2], cfg, gen, False)
        st.update_ema()
        d = min(0.9, (1 + t) / (10 + t))
        want = {k: d * want[k] + (1 - d) * v.detach() for k, v in st.gens["G"].state_dict().items()}
    out = st.exported()
    for k, v in want.items():
        torch.testing.assert_close(out[f"G.{k}"], v)
    assert not torch.equal(out["G.out.weight"], st.gens["G"].out.weight.detach())
    st.ema_decay = 0.0
    assert torch.equal(st.exported()["G.out.weight"], st.gens["G"].out.weight.detach())
