"""Data preparation: the two unpaired domains and the held-out test volumes.

As in the paper, domain A (low quality) is the 2-D slices of every plane of the 3-D volumes, and
domain B (high quality) is unmatched 2-D images: here the clean slices of *other* phantoms (or,
with ``data.source: folder``, the user's 2-D images). Training samples random crops of both.

Layout of ``data/switchable_cyclegan/``::

    train_a.npy           float32 (n, crop, crop) crops of slices of the degraded training volumes
    train_b.npy           float32 (n, crop, crop) crops of the high-quality images
    test/<name>.npy       float32 (E, A, L) held-out degraded volumes, elevational axis first
    test/<name>.truth.npy float32 (E, A, L) their clean truth (synthetic data only)
    manifest.json         source, counts, the blur
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from components.contract import RunContext
from components.papers.switchable_cyclegan.config import SwitchableCycleGANConfig
from components.papers.switchable_cyclegan.phantom import clean_volume, degrade, planes
from components.papers.switchable_cyclegan.realdata import read_images, read_volume, volume_files


def _crops(slices: list[torch.Tensor], count: int, crop: int, gen: torch.Generator) -> list[np.ndarray]:
    """``count`` random ``crop``-square crops from slices (each at least ``crop`` on both sides)."""
    usable = [s for s in slices if min(s.shape) >= crop]
    if not usable:
        raise ValueError(f"no slice or image is at least {crop} pixels on both sides")
    out = []
    for _ in range(count):
        s = usable[int(torch.randint(len(usable), (1,), generator=gen))]
        top = int(torch.randint(s.shape[0] - crop + 1, (1,), generator=gen))
        left = int(torch.randint(s.shape[1] - crop + 1, (1,), generator=gen))
        out.append(np.asarray(s[top : top + crop, left : left + crop], dtype=np.float32))
    return out


def _share(total: int, parts: int, i: int) -> int:
    return total // parts + (1 if i < total % parts else 0)


def prepare(cfg: SwitchableCycleGANConfig, ctx: RunContext) -> None:
    """Write both training domains and the test volumes (deterministic for a seed)."""
    d = cfg.data
    gen = torch.Generator().manual_seed(cfg.seed)
    out = ctx.data_dir
    (out / "test").mkdir(parents=True, exist_ok=True)
    for old in (out / "test").glob("*.npy"):
        old.unlink()
    a, b = [], []
    if d.source == "synthetic":
        for i in ctx.progress(range(d.train_volumes), total=d.train_volumes, desc="domain A volumes"):
            vol = degrade(clean_volume(d.size, gen, d.speckle_grain), d.sigma_elevational, d.noise_std, gen)
            a += _crops(planes(vol, "all"), _share(d.train_crops, d.train_volumes, i), d.crop, gen)
        for i in ctx.progress(range(d.reference_volumes), total=d.reference_volumes, desc="domain B volumes"):
            b += _crops(
                planes(clean_volume(d.size, gen, d.speckle_grain), "all"),
                _share(d.train_crops, d.reference_volumes, i),
                d.crop,
                gen,
            )
        for i in range(d.test_volumes):
            truth = clean_volume(d.size, gen, d.speckle_grain)
            np.save(out / "test" / f"vol{i:03d}.npy", degrade(truth, d.sigma_elevational, d.noise_std, gen).numpy())
            np.save(out / "test" / f"vol{i:03d}.truth.npy", truth.numpy())
        source = "synthetic"
    else:
        assert d.volumes_path is not None and d.images_path is not None  # DataConfig: required for "folder"
        files = volume_files(d.volumes_path)
        if len(files) <= d.test_volumes:
            raise ValueError(f"{len(files)} volumes in {d.volumes_path}: need more than test_volumes={d.test_volumes}")
        order = torch.randperm(len(files), generator=gen).tolist()
        test, train = [files[i] for i in order[: d.test_volumes]], [files[i] for i in order[d.test_volumes :]]
        for i, f in enumerate(train):
            vol = torch.from_numpy(read_volume(f, d.elevational_axis))
            a += _crops(planes(vol, "all"), _share(d.train_crops, len(train), i), d.crop, gen)
        images = [torch.from_numpy(img) for _, img in read_images(d.images_path)]
        b = _crops(images, d.train_crops, d.crop, gen)
        for f in test:
            np.save(out / "test" / f"{f.name.split('.')[0]}.npy", read_volume(f, d.elevational_axis))
        source = f"folder:{d.volumes_path}|{d.images_path}"
    np.save(out / "train_a.npy", np.stack(a))
    np.save(out / "train_b.npy", np.stack(b))
    manifest = {
        "source": source,
        "train_a": len(a),
        "train_b": len(b),
        "crop": d.crop,
        "test": sorted(p.name for p in (out / "test").glob("*.npy")),
        "sigma_elevational": d.sigma_elevational,
        "noise_std": d.noise_std,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    ctx.log.info("prepared %d domain-A and %d domain-B crops, %d test volumes", len(a), len(b), d.test_volumes)


def load_train(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Both domains as ``(n, 1, crop, crop)`` float32 tensors."""
    paths = [data_dir / "train_a.npy", data_dir / "train_b.npy"]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p} missing: run `paperops prepare switchable_cyclegan` first")
    a, b = (torch.from_numpy(np.load(p))[:, None].contiguous() for p in paths)
    return a, b


def load_test(data_dir: Path) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """``[(name, degraded (E, A, L), truth or None)]`` sorted by name."""
    files = sorted(p for p in (data_dir / "test").glob("*.npy") if not p.name.endswith(".truth.npy"))
    if not files:
        raise FileNotFoundError(f"no test volumes in {data_dir / 'test'}: run prepare first")
    out = []
    for f in files:
        truth = f.with_name(f.stem + ".truth.npy")
        out.append((f.stem, np.load(f), np.load(truth) if truth.is_file() else None))
    return out
