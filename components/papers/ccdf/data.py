"""Data preparation: grey natural patches (SR, inpainting) and MR-like phantoms (CS-MRI).

Natural images: skimage's bundled set (or ``data.path``), split by image so that evaluation
images are never trained on; phantoms: random ellipses with texture (components.blocks.data.
phantoms), training and evaluation drawn from disjoint seeds; or real MRI slices from .npy files
(``data.mri_path``; 2-D ``(H, W)`` or stacks ``(S, H, W)``, magnitude or complex, fastMRI-style),
split by file.

Layout of ``data/ccdf/`` (float32 in [0, 1], grey)::

    train_natural.npy  (N, S, S)    train_mri.npy  (M, S, S)
    eval_natural.npy   (E, S, S)    eval_mri.npy   (E, S, S)
    manifest.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components.blocks.data.images import folder_images, random_patches, skimage_images, split_by_image
from components.blocks.data.phantoms import phantoms
from components.contract import RunContext
from components.papers.ccdf.config import CCDFConfig

EVAL_SEED_OFFSET = 10_000  # evaluation phantoms/patches come from seeds disjoint from training
MAX_NPY_BYTES = 512 * 1024 * 1024


def _grey(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.mean(axis=2) for k, v in images.items()}  # (H, W, 3) -> (H, W)


def load_npy_slices(path: str | Path, size: int) -> list[tuple[str, np.ndarray]]:
    """Every ``*.npy`` in ``path`` as ``(file name, (S, size, size))`` magnitude slices in [0, 1].

    Each slice: magnitude, central square crop, area-resized to ``size``, divided by its max.
    Files are read with ``allow_pickle=False``.

    Raises:
        FileNotFoundError / ValueError: no files, or an array that is not 2-D / 3-D numeric.
    """
    folder = Path(path)
    files = sorted(folder.glob("*.npy")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no .npy MRI slices in {folder}")
    out = []
    for f in files:
        if f.stat().st_size > MAX_NPY_BYTES:
            raise ValueError(f"{f} is larger than {MAX_NPY_BYTES} bytes")
        arr = np.load(f, allow_pickle=False)
        if arr.dtype.kind not in "fciu" or arr.ndim not in (2, 3):
            raise ValueError(f"{f}: expected a 2-D or 3-D numeric array, got {arr.dtype} {arr.shape}")
        mag = np.abs(arr).astype(np.float32)
        mag = mag[None] if mag.ndim == 2 else mag
        h, w = mag.shape[1:]
        s = min(h, w)
        crop = mag[:, (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        t = F.interpolate(torch.from_numpy(np.ascontiguousarray(crop))[:, None], size=(size, size), mode="area")[:, 0]
        t = t / t.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]
        out.append((f.name, t.numpy().astype(np.float32)))
    return out


def _natural(cfg: CCDFConfig, ctx: RunContext) -> tuple[np.ndarray, np.ndarray, dict]:
    d = cfg.data
    images = _grey(dict(skimage_images() if d.source == "skimage" else folder_images(d.path)))
    train_names, eval_names = split_by_image(sorted(images), d.eval_images, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    usable = [n for n in train_names if min(images[n].shape) >= d.size]
    if not usable:
        raise ValueError(f"no training image is at least {d.size}px on its short side")
    train = np.concatenate([random_patches(images[n][..., None], d.size, d.patches_per_image, gen)[..., 0] for n in usable])
    egen = torch.Generator().manual_seed(cfg.seed + EVAL_SEED_OFFSET)
    ev = [n for n in eval_names if min(images[n].shape) >= d.size]
    per = -(-d.eval_count // max(1, len(ev)))
    evals = np.concatenate([random_patches(images[n][..., None], d.size, per, egen)[..., 0] for n in ev])[: d.eval_count]
    return train, evals, {"train_images": usable, "eval_images": ev}


def _mri(cfg: CCDFConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    d = cfg.data
    if d.mri_source == "phantom":
        return (phantoms(d.train_phantoms, d.size, cfg.seed), phantoms(d.eval_count, d.size, cfg.seed + EVAL_SEED_OFFSET),
                {"mri": "phantoms"})
    slices = dict(load_npy_slices(d.mri_path, d.size))
    train_files, eval_files = split_by_image(sorted(slices), min(d.eval_images, len(slices) - 1), cfg.seed)
    train = np.concatenate([slices[f] for f in train_files])
    evals = np.concatenate([slices[f] for f in eval_files])[: d.eval_count]
    return train, evals, {"mri_train_files": train_files, "mri_eval_files": eval_files}


def prepare(cfg: CCDFConfig, ctx: RunContext) -> None:
    """Write the four arrays and the manifest (deterministic for a seed)."""
    out = ctx.data_dir
    out.mkdir(parents=True, exist_ok=True)
    train_n, eval_n, man_n = _natural(cfg, ctx)
    train_m, eval_m, man_m = _mri(cfg)
    for name, arr in (("train_natural", train_n), ("eval_natural", eval_n), ("train_mri", train_m), ("eval_mri", eval_m)):
        np.save(out / f"{name}.npy", arr.astype(np.float32))
    manifest = {**man_n, **man_m, "shapes": {"train_natural": list(train_n.shape), "train_mri": list(train_m.shape),
                                              "eval_natural": list(eval_n.shape), "eval_mri": list(eval_m.shape)}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    ctx.log.info("prepared %d natural + %d MRI training images; %d + %d eval", len(train_n), len(train_m), len(eval_n), len(eval_m))


def load_split(data_dir: Path, split: str, kind: str) -> torch.Tensor:
    """``(N, 1, S, S)`` in [-1, 1] (the model's space) of ``<split>_<kind>.npy``."""
    path = Path(data_dir) / f"{split}_{kind}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run `paperops prepare ccdf` first")
    return torch.from_numpy(np.load(path, allow_pickle=False))[:, None] * 2 - 1


def task_kind(task: str) -> str:
    """Which images a task uses: natural patches for SR and inpainting, MR images for MRI."""
    return "mri" if task == "mri" else "natural"
