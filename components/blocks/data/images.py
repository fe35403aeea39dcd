"""Natural images without downloads: scikit-image's bundled set, or a local folder.

Every image is returned as float32 ``(H, W, 3)`` in [0, 1] (grey images are repeated over the
three channels), named, so splits and manifests can say which image went where.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

# Images that ship inside scikit-image's wheel (no pooch download), textured enough to train on.
# ``cat`` is left out on purpose: skimage.data.cat() returns the same picture as chelsea(), and a
# duplicate would let one image sit on both sides of a train/eval split.
SKIMAGE_IMAGES: tuple[str, ...] = (
    "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
    "camera", "coins", "moon", "page", "text", "brick", "grass", "gravel",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def to_rgb_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16/bool/float image, grey or RGB(A) -> float32 ``(H, W, 3)`` in [0, 1]."""
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    else:
        arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"unsupported image shape {image.shape}")
    return np.clip(arr, 0.0, 1.0)


def skimage_images(names: Sequence[str] = SKIMAGE_IMAGES) -> list[tuple[str, np.ndarray]]:
    """The named images of ``skimage.data``, as ``(name, float32 (H, W, 3))``.

    Raises:
        ValueError: for a name skimage does not bundle.
    """
    from skimage import data

    out = []
    for name in names:
        loader = getattr(data, name, None)
        if loader is None:
            raise ValueError(f"skimage.data has no image {name!r}")
        out.append((name, to_rgb_float(loader())))
    return out


def folder_images(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """Every image file directly in ``path`` (sorted by name), as ``(file name, float32 (H, W, 3))``.

    Raises:
        FileNotFoundError: when the folder does not exist or holds no image.
    """
    from PIL import Image

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"image folder {folder} holds no {', '.join(IMAGE_SUFFIXES)} file")
    out = []
    for f in files:
        with Image.open(f) as im:
            arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "I;16", "RGB") else im)
        out.append((f.name, to_rgb_float(arr)))
    return out


def split_by_image(names: Sequence[str], n_eval: int, seed: int) -> tuple[list[str], list[str]]:
    """Split image names into (train, eval); no image is in both.

    Raises:
        ValueError: unless ``1 <= n_eval < len(names)``.
    """
    if not 1 <= n_eval < len(names):
        raise ValueError(f"need 1 <= eval images < {len(names)} images, got {n_eval}")
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    eval_set = {names[i] for i in order[:n_eval]}
    return [n for n in names if n not in eval_set], [n for n in names if n in eval_set]


def random_patches(image: np.ndarray, size: int, count: int, generator: torch.Generator) -> np.ndarray:
    """``count`` random ``size x size`` crops of an ``(H, W, C)`` image -> ``(count, size, size, C)``."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise ValueError(f"image {h}x{w} is smaller than the patch size {size}")
    ys = torch.randint(0, h - size + 1, (count,), generator=generator).tolist()
    xs = torch.randint(0, w - size + 1, (count,), generator=generator).tolist()
    return np.stack([image[y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)])


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size x size`` crop (or the largest square that fits)."""
    h, w = image.shape[:2]
    s = min(size, h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return image[y : y + s, x : x + s]
