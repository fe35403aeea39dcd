"""A labelled patch-classification task cut from photographs: which photograph is this patch from?

Built for frozen-feature evaluation of self-supervised encoders on a CPU with no downloads. Each of
K photographs (by default the scikit-image images bundled in its wheel) is one class. The image is
turned grey (so colour alone cannot name it) and shrunk by ``scale``; ``patch`` x ``patch`` crops
are resized to ``size`` x ``size``. Training patches come from the left ``1 - holdout`` of the
image's width and test patches from the right ``holdout``, with a gap of one patch width between
the two regions: no test pixel was ever seen in training, and the test patches show other objects
and parts of the scene than the training ones.

With ``standardize`` each patch is shifted and scaled to a fixed mean (0.5) and contrast (0.2 std,
with a floor so flat patches are not blown up), so mean brightness and contrast, which alone name
some photographs (about 0.52 test accuracy for a linear probe on those two numbers, against 0.32
after standardising, 14 images), no longer do: the probe needs texture and shape features.

Shapes: ``Split.train_x`` float32 ``(K * n_train, 1, size, size)`` in [0, 1], labels int64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from components.blocks.data.images import SKIMAGE_IMAGES, skimage_images
from components.blocks.data.vision import Split

PATCH_IMAGES: tuple[str, ...] = SKIMAGE_IMAGES


def standardize_patches(x: torch.Tensor, mean: float = 0.5, std: float = 0.2, floor: float = 0.05) -> torch.Tensor:
    """Per-patch ``mean + std * (x - mean_x) / (std_x + floor)``, clamped to [0, 1]: ``(N, C, H, W) -> same``."""
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    s = x.std(dim=(1, 2, 3), keepdim=True)
    return (mean + std * (x - m) / (s + floor)).clamp(0.0, 1.0)


def _crops(image: np.ndarray, patch: int, count: int, lo: int, hi: int, gen: torch.Generator) -> np.ndarray:
    """``count`` crops ``(count, patch, patch)`` of a grey ``(H, W)`` image with columns in ``[lo, hi)``."""
    h = image.shape[0]
    if hi - lo < patch or h < patch:
        raise ValueError(f"a region {h}x{hi - lo} is smaller than the patch {patch}")
    ys = torch.randint(0, h - patch + 1, (count,), generator=gen).tolist()
    xs = torch.randint(lo, hi - patch + 1, (count,), generator=gen).tolist()
    return np.stack([image[y : y + patch, x : x + patch] for y, x in zip(ys, xs, strict=True)])


def photo_patches(
    names: Sequence[str] = PATCH_IMAGES, patch: int = 32, size: int = 16, scale: float = 0.5, n_train: int = 160,
    n_test: int = 150, holdout: float = 0.3, standardize: bool = True, seed: int = 0,
    images: Sequence[tuple[str, np.ndarray]] | None = None,
) -> tuple[Split, list[str]]:
    """The patch split and the class names (one class per photograph).

    Args:
        names: scikit-image images to use (ignored when ``images`` is given).
        patch: side of a crop in the shrunk image; size: side it is resized to.
        scale: shrink factor applied to each photograph first (antialiased).
        n_train, n_test: patches per photograph on each side.
        holdout: fraction of the width (on the right) that only the test patches come from.
        images: ``(name, (H, W, 3) float in [0, 1])`` to use instead of scikit-image's.

    Raises:
        ValueError: when a region is too small for a patch.
    """
    pictures = list(images) if images is not None else skimage_images(names)
    gen = torch.Generator().manual_seed(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "test": []}
    for c, (_, rgb) in enumerate(pictures):
        grey = torch.from_numpy(np.asarray(rgb, dtype=np.float32).mean(axis=2))[None, None]
        if scale != 1.0:
            grey = F.interpolate(grey, scale_factor=scale, mode="bilinear", antialias=scale < 1, align_corners=False)
        g = grey[0, 0].numpy()
        w = g.shape[1]
        cut = round(w * (1 - holdout))
        parts["train"].append(_crops(g, patch, n_train, 0, cut - patch, gen))  # a patch-wide gap before the test side
        parts["test"].append(_crops(g, patch, n_test, cut, w, gen))
        labels["train"] += [c] * n_train
        labels["test"] += [c] * n_test
    out = []
    for side in ("train", "test"):
        x = torch.from_numpy(np.concatenate(parts[side])).float()[:, None]
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=size < patch, align_corners=False).clamp(0, 1)
        out += [standardize_patches(x) if standardize else x, torch.tensor(labels[side], dtype=torch.int64)]
    return Split(out[0].contiguous(), out[1], out[2].contiguous(), out[3], len(pictures)), [n for n, _ in pictures]
