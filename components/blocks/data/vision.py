"""Small labelled image-classification data sets as tensors, and batched augmentations.

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes, no download),
  upsampled bilinearly to ``size`` and split into train/test with a fixed stratified split.
* ``torchvision_dataset``: MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100 from a local folder with
  torchvision's readers and ``download=False``: a missing folder is a ``FileNotFoundError`` that says
  where the files were expected. Never downloads.
* ``random_resized_crop`` / ``add_noise``: the augmentations of MNIST-style contrastive learning
  (torchvision's RandomResizedCrop semantics, batched with ``grid_sample`` and driven by a
  ``torch.Generator`` so a run is reproducible and resumable).

Every image tensor is float32 ``(N, C, H, W)`` in [0, 1]; labels are int64 ``(N,)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

VisionName = Literal["digits", "mnist", "fmnist", "cifar10", "cifar100"]
CLASSES = {"digits": 10, "mnist": 10, "fmnist": 10, "cifar10": 10, "cifar100": 100}
CHANNELS = {"digits": 1, "mnist": 1, "fmnist": 1, "cifar10": 3, "cifar100": 3}


@dataclass
class Split:
    """A labelled train/test split."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of ``(N, C, H, W)`` to ``(N, C, size, size)``, clamped to [0, 1]."""
    if x.shape[-2:] == (size, size):
        return x
    shrink = size < max(x.shape[-2:])
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink).clamp(0, 1)


def digits(size: int = 16, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """scikit-learn's digits, upsampled to ``size`` x ``size``, stratified split (fixed for a seed)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.from_numpy(data.images.astype(np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    y = torch.from_numpy(data.target.astype(np.int64))
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, random_state=seed, stratify=data.target
    )
    x = resize(x, size)
    tr, te = torch.from_numpy(idx_train), torch.from_numpy(idx_test)
    return Split(x[tr].contiguous(), y[tr], x[te].contiguous(), y[te], 10)


def torchvision_dataset(name: VisionName, root: str | Path, size: int | None = None) -> Split:
    """Read a standard data set from ``root`` (torchvision layout, ``download=False``).

    Raises:
        FileNotFoundError: when the files are not under ``root``, naming the folder and the data set.
    """
    import torchvision

    readers = {
        "mnist": torchvision.datasets.MNIST, "fmnist": torchvision.datasets.FashionMNIST,
        "cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100,
    }
    if name not in readers:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(readers)}")
    root = Path(root)
    try:
        sets = [readers[name](root=str(root), train=train, download=False) for train in (True, False)]
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted. You can use download=True ..."
        raise FileNotFoundError(
            f"{name} not found under {root} (torchvision layout, e.g. {root}/MNIST/raw or {root}/cifar-10-batches-py); "
            f"this project never downloads: place the files there first ({exc})"
        ) from None
    out = []
    for ds in sets:
        data = torch.as_tensor(np.asarray(ds.data))
        x = (data[:, None] if data.ndim == 3 else data.permute(0, 3, 1, 2)).float() / 255.0
        out += [resize(x, size) if size else x, torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)]
    train_x, train_y, test_x, test_y = out
    return Split(train_x, train_y, test_x, test_y, CLASSES[name])


def load_split(name: VisionName, root: str | Path | None = None, size: int = 16, test_fraction: float = 0.2,
               seed: int = 0) -> Split:
    """``digits`` (bundled) or a torchvision data set under ``root``, resized to ``size``."""
    if name == "digits":
        return digits(size, test_fraction, seed)
    if root is None:
        raise ValueError(f"data set {name!r} needs a local folder (data.path)")
    return torchvision_dataset(name, root, size)


def random_resized_crop(
    x: torch.Tensor, gen: torch.Generator, scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """One random crop per image, resized back to the input size (torchvision RandomResizedCrop semantics).

    The crop area is ``U(scale) * H * W`` and its aspect ratio log-uniform in ``ratio``; crops that
    do not fit are shrunk to fit (torchvision retries then falls back to the centre; shrinking keeps
    it one pass). Bilinear sampling via ``affine_grid``. ``(N, C, H, W) -> (N, C, H, W)``.
    """
    n = x.shape[0]
    area = torch.empty(n).uniform_(*scale, generator=gen)
    log_r = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    r = log_r.exp()
    w = (area * r).sqrt().clamp(max=1.0)  # fraction of the width
    h = (area / r).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - w)  # centre in [-1, 1] coordinates, crop inside
    cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - h)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def add_noise(x: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    """``x + std * N(0, 1)`` (EBCLR libs/utils.py ``get_t``: ``noise_std``; not clamped, as there)."""
    return x + std * torch.randn(x.shape, generator=gen) if std > 0 else x
