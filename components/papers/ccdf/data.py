"""Data preparation: grey photographs (SR, inpainting) and real MR slices (CS-MRI).

Photographs: skimage's bundled set (or ``data.path``), split by *image* into train / validation /
test (``data.test_photos``, ``data.val_photos``; the rest train). Training uses random
``data.train_size`` patches of the training photos at several scales (short side 64, 128, 256):
the eps-network is convolutional, so a prior learnt on patches applies to the larger test images.
Test and validation images are ``data.size`` squares of each held-out photo: the whole scene
area-resized, and a centre crop of the photo resized to short side 2 x size.

MR: slices of a real volume (``mri_data.py``: nibabel's bundled EPI brain by default), split by
slice range with gaps (``data.mri_*_slices``); training adds the volume's other time points of the
training slices and ``data.train_phantoms`` phantoms. Or ``.npy`` slices / phantoms.

Layout of ``data/ccdf/`` (float32 in [0, 1], grey)::

    train_natural.npy (N, P, P)   val_natural.npy (V, S, S)   eval_natural.npy (E, S, S)
    train_mri.npy     (M, P, P)   val_mri.npy     (V', S, S)  eval_mri.npy     (E', S, S)
    manifest.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components.blocks.data.images import (
    folder_images,
    random_patches,
    skimage_images,
    split_by_image,
)
from components.blocks.data.phantoms import phantoms
from components.contract import RunContext
from components.papers.ccdf.config import CCDFConfig
from components.papers.ccdf.mri_data import (
    bundled_volume_path,
    load_nifti_slices,
    split_slices,
)

EVAL_SEED_OFFSET = 10_000  # evaluation phantoms come from seeds disjoint from training
MAX_NPY_BYTES = 512 * 1024 * 1024
TRAIN_SCALES = (64, 128, 256)  # short side of the training photos before patching


def _grey(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.mean(axis=2) for k, v in images.items()}  # (H, W, 3) -> (H, W)


def _resize_short(img: np.ndarray, short: int) -> np.ndarray:
    """Area-resize (or bilinear-enlarge) a grey ``(H, W)`` image so its short side is ``short``."""
    h, w = img.shape
    f = short / min(h, w)
    size = (max(short, round(h * f)), max(short, round(w * f)))
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None]
    mode = "area" if f < 1 else "bilinear"
    return F.interpolate(t, size=size, mode=mode, **({} if mode == "area" else {"align_corners": False}))[0, 0].numpy()


def _centre(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape
    return img[(h - size) // 2 : (h - size) // 2 + size, (w - size) // 2 : (w - size) // 2 + size]


def held_out_views(img: np.ndarray, size: int) -> np.ndarray:
    """Two ``(size, size)`` views of a held-out photo: the whole scene, and a centre crop at 2x."""
    return np.stack([_centre(_resize_short(img, size), size), _centre(_resize_short(img, 2 * size), size)])


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


def _patches(images: list[np.ndarray], size: int, count: int, gen: torch.Generator) -> np.ndarray:
    """``count`` random ``size`` patches of each image, randomly flipped: ``(len * count, size, size)``."""
    out = np.concatenate(
        [random_patches(im[..., None], size, count, gen)[..., 0] for im in images if min(im.shape) >= size]
    )
    flip = torch.rand(len(out), 2, generator=gen) < 0.5
    out[flip[:, 0].numpy()] = out[flip[:, 0].numpy()][:, :, ::-1]
    out[flip[:, 1].numpy()] = out[flip[:, 1].numpy()][:, ::-1, :]
    return np.ascontiguousarray(out)


def _natural(cfg: CCDFConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    d = cfg.data
    if d.source == "skimage":
        images = _grey(dict(skimage_images()))
    else:
        assert d.path is not None  # DataConfig._paths
        images = _grey(dict(folder_images(d.path)))
    names = sorted(images)
    if d.source == "skimage":
        test_names, val_names = list(d.test_photos), list(d.val_photos)
        missing = [n for n in test_names + val_names if n not in images]
        if missing:
            raise ValueError(f"test/val photos {missing} are not in the bundled set {names}")
    else:  # a user's folder: a seeded split by image
        rest, test_names = split_by_image(names, min(len(d.test_photos), len(names) - 2), cfg.seed)
        _, val_names = split_by_image(rest, 1, cfg.seed + 1)
    train_names = [n for n in names if n not in set(test_names) | set(val_names)]
    gen = torch.Generator().manual_seed(cfg.seed)
    scaled = [_resize_short(images[n], s) for n in train_names for s in TRAIN_SCALES]
    train = _patches(scaled, d.train_size, d.patches_per_image, gen)
    val = np.concatenate([held_out_views(images[n], d.size) for n in val_names])
    test = np.concatenate([held_out_views(images[n], d.size) for n in test_names])
    return train, val, test, {"train_photos": train_names, "val_photos": val_names, "test_photos": test_names}


def _mri(cfg: CCDFConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    d = cfg.data
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    ph = (
        phantoms(d.train_phantoms, d.train_size, cfg.seed)
        if d.train_phantoms
        else np.zeros((0, d.train_size, d.train_size), np.float32)
    )
    if d.mri_source == "phantom":
        val = phantoms(max(1, d.eval_count // 4), d.size, cfg.seed + EVAL_SEED_OFFSET + 1)
        return ph, val, phantoms(d.eval_count, d.size, cfg.seed + EVAL_SEED_OFFSET), {"mri": "phantoms"}
    if d.mri_source == "npy":
        assert d.mri_path is not None  # DataConfig._paths
        slices = dict(load_npy_slices(d.mri_path, d.size))
        rest, eval_files = split_by_image(sorted(slices), max(1, min(d.eval_images, len(slices) - 2)), cfg.seed)
        train_files, val_files = split_by_image(rest, 1, cfg.seed + 1)
        train = _patches([s for f in train_files for s in slices[f]], d.train_size, d.patches_per_image, gen)
        return (
            np.concatenate([train, ph]),
            np.concatenate([slices[f] for f in val_files]),
            np.concatenate([slices[f] for f in eval_files])[: d.eval_count],
            {"mri_train_files": train_files, "mri_val_files": val_files, "mri_eval_files": eval_files},
        )
    path = Path(d.mri_path) if d.mri_path else bundled_volume_path()
    vol = load_nifti_slices(path, d.size, time_points=2)  # (T, Z, S, S)
    split = split_slices(vol.shape[1], d.mri_train_slices, d.mri_val_slices, d.mri_test_slices)
    train_slices = [vol[t, z] for t in range(vol.shape[0]) for z in split["train"]]
    train = _patches(train_slices, d.train_size, d.patches_per_image, gen)
    return (
        np.concatenate([train, ph]),
        vol[0, split["val"]],
        vol[0, split["test"]],
        {"mri_volume": path.name, "mri_slices": split, "mri_time_points_in_train": int(vol.shape[0])},
    )


def prepare(cfg: CCDFConfig, ctx: RunContext) -> None:
    """Write the six arrays and the manifest (deterministic for a seed)."""
    out = ctx.data_dir
    out.mkdir(parents=True, exist_ok=True)
    tn, vn, en, man_n = _natural(cfg)
    tm, vm, em, man_m = _mri(cfg)
    arrays = {
        "train_natural": tn,
        "val_natural": vn,
        "eval_natural": en[: cfg.data.eval_count],
        "train_mri": tm,
        "val_mri": vm,
        "eval_mri": em[: cfg.data.eval_count],
    }
    for name, arr in arrays.items():
        np.save(out / f"{name}.npy", arr.astype(np.float32))
    manifest = {**man_n, **man_m, "shapes": {k: list(v.shape) for k, v in arrays.items()}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    ctx.log.info(
        "prepared %d natural + %d MR training patches; eval %d + %d",
        len(tn),
        len(tm),
        len(arrays["eval_natural"]),
        len(arrays["eval_mri"]),
    )


def load_split(data_dir: Path, split: str, kind: str) -> torch.Tensor:
    """``(N, 1, S, S)`` in [-1, 1] (the model's space) of ``<split>_<kind>.npy``."""
    path = Path(data_dir) / f"{split}_{kind}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run `paperops prepare ccdf` first")
    return torch.from_numpy(np.load(path, allow_pickle=False))[:, None] * 2 - 1


def task_kind(task: str) -> str:
    """Which images a task uses: photographs for SR and inpainting, MR slices for MRI."""
    return "mri" if task.startswith("mri") else "natural"
