"""Data preparation: the training photographs and the held-out evaluation crops.

Noise is never stored: training adds it on the fly per batch (self-supervision sees only the
noisy images), evaluation adds it with a fixed seed per image and setting.

Training uses every photograph scikit-image and scikit-learn bundle (``PHOTOS``, ``EXTRA_PHOTOS``)
except the ones held out by name (``data.eval_names``), as random crops with random flips, quarter
turns and, for a fraction of the crops, conversion to grey, so that one network sees grey and
colour pictures alike.

Layout of ``data/noise2score/``::

    train_images.npz    uint8 (H, W, 3) per training image, keyed by name
    eval/<name>.npy     float32 (S, S, 3) central crops of the evaluation images
    manifest.json       sources, the split by image, shapes
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components.blocks.data.images import center_crop, folder_images, skimage_images, split_by_image
from components.contract import RunContext
from components.papers.noise2score.config import Noise2ScoreConfig

# Every photograph in scikit-image's wheel (no download). Left out: synthetic pictures (checkerboard,
# colorwheel, horse, logo, shepp_logan_phantom) and ``cat``, the same picture as ``chelsea``.
PHOTOS: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)


# Photographs bundled elsewhere in installed wheels: scikit-learn's two sample images and the left
# view of scikit-image's stereo pair (the right view is left out: nearly the same picture).
EXTRA_PHOTOS: tuple[str, ...] = ("china", "flower", "motorcycle")


def extra_photos() -> list[tuple[str, np.ndarray]]:
    """``EXTRA_PHOTOS`` as float32 ``(H, W, 3)`` in [0, 1] (no download)."""
    from skimage.data import stereo_motorcycle
    from sklearn.datasets import load_sample_image

    from components.blocks.data.images import to_rgb_float

    out = [(n, to_rgb_float(load_sample_image(f"{n}.jpg"))) for n in ("china", "flower")]
    return [*out, ("motorcycle", to_rgb_float(stereo_motorcycle()[0]))]


def _downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    if max(image.shape[:2]) <= max_side:
        return image
    from skimage.transform import resize

    f = max_side / max(image.shape[:2])
    shape = (round(image.shape[0] * f), round(image.shape[1] * f), image.shape[2])
    return resize(image, shape, anti_aliasing=True).astype(np.float32)


def split(cfg: Noise2ScoreConfig, names: list[str]) -> tuple[list[str], list[str]]:
    """(train, eval) names: ``eval_names`` that exist (first ``eval_images``), else a seeded split."""
    d = cfg.data
    held = [n for n in d.eval_names if n in names][: d.eval_images]
    if not held:
        return split_by_image(sorted(names), d.eval_images, cfg.seed)
    return [n for n in names if n not in held], held


def prepare(cfg: Noise2ScoreConfig, ctx: RunContext) -> None:
    """Write the training images and the evaluation crops (deterministic)."""
    d = cfg.data
    if d.source == "skimage":
        images = dict(skimage_images(PHOTOS)) | dict(extra_photos())
    else:
        assert d.path is not None  # DataConfig._folder_needs_path
        images = {Path(n).stem: im for n, im in folder_images(d.path)}
    train_names, eval_names = split(cfg, sorted(images))
    usable = [n for n in train_names if min(images[n].shape[:2]) >= d.patch_size]
    if not usable:
        raise ValueError(f"no training image is at least {d.patch_size}px on its short side")
    out = ctx.data_dir
    (out / "eval").mkdir(parents=True, exist_ok=True)
    for old in (out / "eval").glob("*.npy"):
        old.unlink()
    train = {}
    for n in ctx.progress(usable, total=len(usable), desc="images"):
        im = _downscale(images[n], max(d.max_side, d.patch_size))
        train[n] = np.round(np.clip(im, 0, 1) * 255).astype(np.uint8)
    np.savez(out / "train_images.npz", **train)
    for name in eval_names:
        np.save(out / "eval" / f"{name}.npy", center_crop(images[name], d.eval_crop).astype(np.float32))
    manifest = {
        "source": d.source if d.source == "skimage" else f"folder:{d.path}",
        "train_images": {n: list(a.shape) for n, a in train.items()},
        "eval_images": eval_names,
        "eval_crop": d.eval_crop,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    ctx.log.info("prepared %d training images; %d held-out eval images", len(train), len(eval_names))


def load_train(data_dir: Path) -> list[torch.Tensor]:
    """Training images as uint8 ``(H, W, 3)`` tensors, sorted by name."""
    path = data_dir / "train_images.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run `paperops prepare noise2score` first")
    with np.load(path) as z:
        return [torch.from_numpy(z[k]) for k in sorted(z.files)]


def sample_batch(
    images: list[torch.Tensor],
    size: int,
    batch: int,
    grey_fraction: float,
    generator: torch.Generator,
    zoom: float = 1.0,
) -> torch.Tensor:
    """``batch`` random crops ``(B, 3, size, size)`` float32 in [0, 1]: a uniformly chosen image, a
    random position, a random flip and quarter turn, and grey (channel mean) with ``grey_fraction``.

    ``zoom`` > 1: each crop is first magnified by a log-uniform factor in [1, zoom] (a crop of side
    size / factor, bilinearly resized to ``size``), so that smooth content at the scale of a pixel
    (as in ``moon``) is seen in training as well as fine texture (random-resized-crop augmentation).
    """
    out = torch.empty(batch, 3, size, size)
    pick = torch.randint(0, len(images), (batch,), generator=generator).tolist()
    u = torch.rand(batch, 3, generator=generator).tolist()
    factors = (zoom ** torch.rand(batch, generator=generator)).tolist() if zoom > 1 else [1.0] * batch
    for b, i in enumerate(pick):
        im = images[i]
        h, w = im.shape[:2]
        side = min(size, h, w) if factors[b] == 1.0 else max(8, min(round(size / factors[b]), h, w))
        top = int(torch.randint(0, h - side + 1, (), generator=generator))
        left = int(torch.randint(0, w - side + 1, (), generator=generator))
        crop = im[top : top + side, left : left + side].permute(2, 0, 1).float() / 255.0
        if side != size:
            crop = F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)[0]
        if u[b][0] < 0.5:
            crop = crop.flip(-1)
        crop = torch.rot90(crop, int(u[b][1] * 4) % 4, dims=(-2, -1))
        if u[b][2] < grey_fraction:
            crop = crop.mean(0, keepdim=True).expand(3, -1, -1)
        out[b] = crop
    return out


def load_eval(data_dir: Path) -> list[tuple[str, torch.Tensor]]:
    """Evaluation crops as ``[(name, (1, 3, S, S))]``, sorted by name."""
    files = sorted((data_dir / "eval").glob("*.npy"))
    if not files:
        raise FileNotFoundError(f"no evaluation images in {data_dir / 'eval'}: run prepare first")
    return [(f.stem, torch.from_numpy(np.load(f)).permute(2, 0, 1)[None].contiguous()) for f in files]
