"""Data: a labelled image split on disk, and the MNIST-style augmentations of EBCLR.

Layout of ``data/ebclr/``::

    train_x.npy  float32 (N, C, S, S) in [0, 1]     train_y.npy  int64 (N,)
    test_x.npy   float32 (M, C, S, S) in [0, 1]     test_y.npy   int64 (M,)
    manifest.json  source, sizes, number of classes, class names

Sources: scikit-learn's digits and grey patches of the bundled scikit-image photographs labelled by
photograph (``patches``, components/blocks/data/patches.py: the default, a task whose random-init
probe floor leaves room above it) are made here; MNIST / Fashion-MNIST / CIFAR-10/100 are read from
``data.path`` (torchvision layout), never downloaded.

Labels are never used by the self-supervised training; only the linear probe and k-NN see them.
Augmentation (configs_ebclr/mnist_*.yaml ``t``): RandomResizedCrop(scale 0.08-1) then additive
Gaussian noise std 0.03. The same views feed EBCLR, SimCLR and MoCo (the issue's "same data").
Networks see ``2x - 1`` (libs/ebclr.py: ``X_v1 = V1 * 2.0 - 1.0``; the evaluation's Preprocess(0.5, 0.5)).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from components.blocks.data.patches import photo_patches
from components.blocks.data.vision import (
    Split,
    add_noise,
    load_split,
    random_resized_crop,
)
from components.contract import RunContext
from components.papers.ebclr.config import DataConfig, EBCLRPaperConfig

FILES = ("train_x", "train_y", "test_x", "test_y")


def prepare(cfg: EBCLRPaperConfig, ctx: RunContext) -> None:
    """Write the split (digits are bundled; the real data sets are read from ``data.path``, never downloaded)."""
    d = cfg.data
    root = None
    if d.path is not None:
        root = Path(d.path) if Path(d.path).is_absolute() else ctx.root / d.path
    names = None
    if d.source == "patches":
        split, names = photo_patches(
            patch=d.patch,
            size=d.image_size,
            scale=d.patch_scale,
            n_train=d.patches_train,
            n_test=d.patches_test,
            standardize=d.patch_standardize,
            seed=cfg.seed,
        )
    else:
        split = load_split(d.source, root, d.image_size, d.test_fraction, cfg.seed)
    if d.train_limit:
        split.train_x, split.train_y = split.train_x[: d.train_limit], split.train_y[: d.train_limit]
    out = ctx.data_dir
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        np.save(out / f"{name}.npy", getattr(split, name).numpy())
    manifest = {
        "source": d.source,
        "image_size": d.image_size,
        "channels": int(split.train_x.shape[1]),
        "n_classes": split.n_classes,
        "train": len(split.train_y),
        "test": len(split.test_y),
        "classes": names or [str(c) for c in range(split.n_classes)],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    ctx.log.info(
        "prepared %s: %d train, %d test images of %dx%d",
        d.source,
        len(split.train_y),
        len(split.test_y),
        d.image_size,
        d.image_size,
    )


def load(data_dir: Path) -> Split:
    """The split written by ``prepare``."""
    data_dir = Path(data_dir)
    if not (data_dir / "manifest.json").is_file():
        raise FileNotFoundError(f"{data_dir / 'manifest.json'} missing: run `paperops prepare ebclr` first")
    arrays = [torch.from_numpy(np.load(data_dir / f"{n}.npy")) for n in FILES]
    train_x, train_y, test_x, test_y = arrays
    return Split(train_x, train_y, test_x, test_y, json.loads((data_dir / "manifest.json").read_text())["n_classes"])


def class_names(data_dir: Path, n_classes: int) -> list[str]:
    """The class names in the manifest (digits: "0".."9"; patches: the photographs' names)."""
    manifest = json.loads((Path(data_dir) / "manifest.json").read_text())
    return [str(c) for c in manifest.get("classes", range(n_classes))]


def augment(x: torch.Tensor, d: DataConfig, gen: torch.Generator) -> torch.Tensor:
    """One random view of each image ``(N, C, S, S)`` in [0, 1] (not clamped after the noise, as in get_t)."""
    return add_noise(random_resized_crop(x, gen, d.crop_scale), d.noise_std, gen)


def to_input(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> the networks' [-1, 1] input scale."""
    return x * 2.0 - 1.0
