"""Training falls and resumes to the same weights; predict validates inputs and keeps shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from components.config import load_params
from components.contract import RunContext
from components.papers.ccdf import PAPER
from components.papers.ccdf.data import load_npy_slices
from components.papers.ccdf.mri_data import load_nifti_slices, split_slices
from components.papers.ccdf.predict import (
    inpaint,
    mri_reconstruct,
    simulate_kspace,
    super_resolve,
)
from tests.crash import Crash, Recorder, crash_after

ROOT = Path(__file__).resolve().parents[3]


def tiny_cfg(**train):
    cfg = load_params(ROOT / "params.yaml", scale="smoke").config("ccdf")
    upd = {"steps": 12, "init_steps": 4, "checkpoint_every": 5, "log_every": 2, **train}
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=upd)})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ccdf")
    cfg = tiny_cfg()
    ctx = RunContext("ccdf", root, seed=cfg.seed)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    return root, cfg


def test_resume_equals_uninterrupted(trained, tmp_path: Path) -> None:
    root, cfg = trained
    ctx = RunContext("ccdf", tmp_path, seed=cfg.seed, progress=crash_after(17))
    PAPER.prepare(cfg, ctx)
    with pytest.raises(Crash):
        PAPER.train(cfg, ctx)  # dies in the first initialiser phase, after the checkpoint at step 15
    assert not ctx.model_dir.exists()
    PAPER.train(cfg, RunContext("ccdf", tmp_path, seed=cfg.seed))
    a = load_file(str(root / "models/ccdf/model/model.safetensors"))
    b = load_file(str(tmp_path / "models/ccdf/model/model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert any(k.startswith("init.mri.") for k in a) and any(k.startswith("score.") for k in a)


def test_score_loss_falls(tmp_path: Path) -> None:
    cfg = tiny_cfg(steps=60, init_steps=0, log_every=10, checkpoint_every=1000, lr=3e-3)
    rec = Recorder()
    ctx = RunContext("ccdf", tmp_path, seed=cfg.seed, logger=rec)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    losses = rec.points["loss/score"]
    assert np.mean(losses[-2:]) < 0.8 * losses[0]


def test_predict_shapes_and_errors(trained) -> None:
    root, _ = trained
    model = PAPER.load(root / "models/ccdf/model")
    rng = np.random.default_rng(0)
    out = super_resolve(model, rng.random((5, 7)).astype(np.float32), steps=10, t0=0.3)
    assert out["image"].shape == (20, 28) and out["nfe"] == 3
    rgb = inpaint(model, rng.random((18, 20, 3)), np.ones((18, 20)), init="simple", steps=10, t0=0.2)["image"]
    assert rgb.shape == (18, 20, 3)
    img = rng.random((16, 16)).astype(np.float32)
    k, m = simulate_kspace(model, img, 4.0)
    assert k.shape == m.shape == (16, 16) and np.iscomplexobj(k)
    r = mri_reconstruct(model, k, m, steps=10, t0=0.2)
    assert r["image"].shape == r["array"].shape == (16, 16) and np.isfinite(r["array"]).all()
    assert PAPER.predict(model, PAPER.example_input())["image"].shape == (32, 32)
    bad = [
        lambda: super_resolve(model, np.full((4, 4), np.nan)),
        lambda: super_resolve(model, rng.random((4, 4)), scale=3),  # network init is x4 only
        lambda: super_resolve(model, rng.random((100, 4))),  # output over MAX_SIDE
        lambda: super_resolve(model, rng.random((4, 4)), t0=0.0),
        lambda: super_resolve(model, rng.random((4, 4)), steps=1000, t0=1.0),  # over MAX_NFE
        lambda: inpaint(model, rng.random((16, 16)), np.ones((8, 16))),
        lambda: mri_reconstruct(model, k, m[:8]),
        lambda: mri_reconstruct(model, k[:15, :15], m[:15, :15]),
        lambda: mri_reconstruct(model, np.where(m > 0, np.inf, k), m),
        lambda: mri_reconstruct(model, k, m * 0.5),
    ]
    for fn in bad:
        with pytest.raises(ValueError):
            fn()


def test_real_data_paths(tmp_path: Path) -> None:
    from PIL import Image

    imgs, mri = tmp_path / "imgs", tmp_path / "mri"
    imgs.mkdir()
    mri.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(imgs / f"im{i}.png")
    np.save(mri / "vol.npy", (rng.random((2, 40, 36)) + 1j * rng.random((2, 40, 36))).astype(np.complex64))
    np.save(mri / "slice.npy", rng.random((30, 30)).astype(np.float32))
    np.save(mri / "slice2.npy", rng.random((20, 24)).astype(np.float32))
    slices = dict(load_npy_slices(mri, 16))
    assert slices["vol.npy"].shape == (2, 16, 16) and slices["slice.npy"].shape == (1, 16, 16)
    assert all(0 <= s.min() and s.max() <= 1 + 1e-6 for s in slices.values())
    cfg = tiny_cfg()
    cfg = cfg.model_copy(
        update={
            "data": cfg.data.model_copy(
                update={
                    "source": "folder",
                    "path": str(imgs),
                    "mri_source": "npy",
                    "mri_path": str(mri),
                    "eval_images": 1,
                }
            )
        }
    )
    ctx = RunContext("ccdf", tmp_path / "run", seed=0)
    PAPER.prepare(cfg, ctx)
    assert (ctx.data_dir / "train_mri.npy").is_file() and np.load(ctx.data_dir / "eval_natural.npy").shape[1:] == (
        16,
        16,
    )
    np.save(mri / "bad.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError):
        load_npy_slices(mri, 16)


def test_nifti_loader_and_slice_split(tmp_path: Path) -> None:
    """The real-MR loader on a small NIfTI the test writes: (T, Z, size, size) in [0, 1], one scale per
    volume (the brighter slice stays brighter), padding to a square keeps the aspect; prepare splits by
    slice range and never puts a test slice in training."""
    import nibabel as nib

    vol = np.zeros((20, 12, 9, 2), np.float32)  # (X, Y, Z, T), non-square in-plane
    for z in range(9):
        vol[4:16, :, z, :] = 100.0 * (z + 1)  # a bright band across the short axis, brighter with z
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))
    out = load_nifti_slices(path, 16, time_points=2, percentile=100.0)
    assert out.shape == (2, 9, 16, 16) and out.dtype == np.float32
    assert out.min() >= 0 and abs(out.max() - 1.0) < 1e-6
    assert out[0, 8].max() > out[0, 0].max() * 5  # one scale per volume, not per slice
    assert out[0, 4, :, 0].max() == 0 and out[0, 4, :, 8].max() > 0  # the 12-wide axis is padded to 20, centred
    with pytest.raises(ValueError):
        split_slices(9, (0, 4), (4, 5), (7, 8))  # overlapping ranges
    with pytest.raises(FileNotFoundError):
        load_nifti_slices(tmp_path / "missing.nii", 16)
    cfg = tiny_cfg()
    cfg = cfg.model_copy(
        update={
            "data": cfg.data.model_copy(
                update={
                    "mri_path": str(path),
                    "mri_train_slices": (0, 3),
                    "mri_val_slices": (5, 5),
                    "mri_test_slices": (7, 8),
                }
            )
        }
    )
    ctx = RunContext("ccdf", tmp_path / "run", seed=0)
    PAPER.prepare(cfg, ctx)
    import json

    man = json.loads((ctx.data_dir / "manifest.json").read_text())
    assert man["mri_slices"] == {"train": [0, 1, 2, 3], "val": [5], "test": [7, 8]}
    test_slices = np.load(ctx.data_dir / "eval_mri.npy")
    assert test_slices.shape == (2, 16, 16)
