"""Data preparation: clean training patches and held-out evaluation images.

Noise is never stored: training adds it on the fly per batch (self-supervision sees only the
noisy images), evaluation adds it with a fixed seed per image and setting.

Layout of ``data/noise2score/``::

    train_patches.npy   float32 (N, P, P, 3) clean patches of the training images
    eval/<name>.npy     float32 (S, S, 3) central crops of the evaluation images
    manifest.json       sources, the split by image, shapes
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from components.blocks.data.images import center_crop, folder_images, random_patches, skimage_images, split_by_image
from components.contract import RunContext
from components.papers.noise2score.config import Noise2ScoreConfig


def prepare(cfg: Noise2ScoreConfig, ctx: RunContext) -> None:
    """Write the training patches and the evaluation crops (deterministic for a seed)."""
    d = cfg.data
    images = dict(skimage_images() if d.source == "skimage" else folder_images(d.path))
    train_names, eval_names = split_by_image(sorted(images), d.eval_images, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    patches = [
        random_patches(images[n], d.patch_size, d.patches_per_image, gen)
        for n in ctx.progress(train_names, total=len(train_names), desc="patches")
        if min(images[n].shape[:2]) >= d.patch_size
    ]
    if not patches:
        raise ValueError(f"no training image is at least {d.patch_size}px on its short side")
    out = ctx.data_dir
    (out / "eval").mkdir(parents=True, exist_ok=True)
    for old in (out / "eval").glob("*.npy"):
        old.unlink()
    train = np.concatenate(patches).astype(np.float32)
    np.save(out / "train_patches.npy", train)
    for name in eval_names:
        np.save(out / "eval" / f"{Path(name).stem}.npy", center_crop(images[name], d.eval_crop).astype(np.float32))
    manifest = {
        "source": d.source if d.source == "skimage" else f"folder:{d.path}",
        "train_images": train_names,
        "eval_images": eval_names,
        "train_patches": list(train.shape),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    ctx.log.info("prepared %d patches from %d images; %d eval images", len(train), len(train_names), len(eval_names))


def load_train(data_dir: Path) -> torch.Tensor:
    """Training patches as ``(N, 3, P, P)`` float32."""
    path = data_dir / "train_patches.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run `paperops prepare noise2score` first")
    return torch.from_numpy(np.load(path)).permute(0, 3, 1, 2).contiguous()


def load_eval(data_dir: Path) -> list[tuple[str, torch.Tensor]]:
    """Evaluation crops as ``[(name, (1, 3, S, S))]``, sorted by name."""
    files = sorted((data_dir / "eval").glob("*.npy"))
    if not files:
        raise FileNotFoundError(f"no evaluation images in {data_dir / 'eval'}: run prepare first")
    return [(f.stem, torch.from_numpy(np.load(f)).permute(2, 0, 1)[None].contiguous()) for f in files]
