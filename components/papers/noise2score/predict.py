"""Serving-side inference: denoise an image, estimate its noise model.

Images are float32 numpy arrays in [0, 1], ``(H, W)`` (grey) or ``(H, W, C)`` with C = 1 or 3;
grey images are repeated over the three channels for the network and averaged back.

``noise="auto"``: the family is estimated blind from how the variance of the residual y - D(y)
follows the intensity (the Tweedie variance function phi mu^p, variance.py); no ``level``: the
level of the (given or estimated) family is the one whose score model has the least AR-DAE loss
on the image (estimate.py). Both are ours, not the paper's finite-difference rule, which a
conditioned score network cannot use. When the image is too small or flat for the variance fit,
the family is chosen by the AR-DAE loss too. Estimation runs on the central 256x256 crop
only (the noise model is global; this bounds its cost for a 2048x2048 request); denoising always
covers the whole image, with Tweedie's closed form on the network's score.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from components.papers.noise2score.estimate import best_level, probe, select_noise_model
from components.papers.noise2score.model import Noise2ScoreModel
from components.papers.noise2score.noise import FAMILIES, TWEEDIE_POWER
from components.papers.noise2score.variance import estimate_noise_model

NOISE_CHOICES = ("auto", *FAMILIES)
MAX_SIDE = 4096
ESTIMATION_SIDE = 256  # the noise model is global: estimate it on a central crop


def _to_tensor(image: np.ndarray) -> tuple[torch.Tensor, tuple[int, ...]]:
    arr = np.asarray(image)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"image must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got shape {np.shape(image)}")
    h, w = arr.shape[:2]
    if min(h, w) < 1 or max(h, w) > MAX_SIDE:
        raise ValueError(f"image sides must be in [1, {MAX_SIDE}], got {h}x{w}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("image holds non-finite values")
    t = torch.from_numpy(np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr).permute(2, 0, 1)[None]
    return t.contiguous(), np.shape(image)


def _from_tensor(x: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
    arr = x[0].permute(1, 2, 0).clamp(0, 1).numpy().astype(np.float32)
    if len(shape) == 2 or shape[2] == 1:
        arr = arr.mean(axis=2)
        return arr if len(shape) == 2 else arr[..., None]
    return arr


def _estimation_crop(y: torch.Tensor) -> torch.Tensor:
    """The central ``ESTIMATION_SIDE``-square of ``(1, C, H, W)`` (the whole image when smaller)."""
    h, w = y.shape[-2:]
    ch, cw = min(h, ESTIMATION_SIDE), min(w, ESTIMATION_SIDE)
    top, left = (h - ch) // 2, (w - cw) // 2
    return y[..., top : top + ch, left : left + cw]


def _ranges(model: Noise2ScoreModel) -> dict[str, tuple[float, float]]:
    """The level range searched per family: the range the network was trained on."""
    noise = model.config["noise"]
    return {f: (float(noise[f][0]), float(noise[f][1])) for f in model.families}


def _score(model: Noise2ScoreModel):
    return lambda y, family, levels: model.score(y, family, levels)


def _estimate(model: Noise2ScoreModel, y: torch.Tensor, family: str | None) -> tuple[str, float]:
    """(family, level) of ``y`` ``(1, 3, h, w)``: both blind, or the level of a given family."""
    est = model.config.get("estimate", {})
    sigma_a, grid = float(est.get("sigma_a", 0.01)), int(est.get("grid", 5))
    if family is None and est.get("family", "variance") == "variance":
        try:
            family = estimate_noise_model(model.net.denoised, y, _ranges(model)).family
        except ValueError:  # too few usable pixels for the variance fit: the matching loss alone
            family = None
    if family is None:
        fam, level, _ = select_noise_model(_score(model), y, _ranges(model), sigma_a, grid)
        return fam, level
    return family, best_level(_score(model), y, family, _ranges(model)[family], probe(y), sigma_a, grid)[0]


def estimate(model: Noise2ScoreModel, image: np.ndarray) -> dict[str, float | str]:
    """``{"family", "level", "power"}`` of the noise in ``image``; power: the family's Tweedie power."""
    y = _estimation_crop(_to_tensor(image)[0])
    family, level = _estimate(model, y, None)
    if not (math.isfinite(level) and level > 0):
        raise ValueError("could not estimate the noise level of this image")
    return {"family": family, "level": float(level), "power": TWEEDIE_POWER[family]}


def denoise(model: Noise2ScoreModel, image: np.ndarray, noise: str = "auto", level: float | None = None) -> dict:
    """Denoise with the closed-form Tweedie formula of the (given or estimated) noise model.

    Args:
        model: from ``load``.
        image: float32 ``(H, W)`` or ``(H, W, C)`` in [0, 1].
        noise: ``auto`` (estimated blind) or a family.
        level: Gaussian sigma on the 0..255 scale, Poisson zeta, or Gamma k; None: estimated.

    Returns:
        ``{"image": same shape as the input, "family": str, "level": float}``.

    Raises:
        ValueError: for a bad image, an unknown noise name, a family the model lacks, or a
            level that is not a positive finite number.
    """
    if noise not in NOISE_CHOICES:
        raise ValueError(f"unknown noise {noise!r}; expected one of {', '.join(NOISE_CHOICES)}")
    if level is not None and not (math.isfinite(level) and level > 0):
        raise ValueError(f"level must be a positive finite number, got {level}")
    y, shape = _to_tensor(image)
    if noise != "auto" and noise not in model.families:
        raise ValueError(f"this model has no network for {noise!r} noise (it has {', '.join(model.families)})")
    family = None if noise == "auto" else noise
    if family is None or level is None:
        est_family, est_level = _estimate(model, _estimation_crop(y), family)
        family = est_family
        if level is None:
            level = est_level
        if not (math.isfinite(level) and level > 0):
            raise ValueError(f"could not estimate a {family} noise level for this image; pass level")
    x = model.denoise(y, family, level)
    return {"image": _from_tensor(x, shape), "family": family, "level": float(level)}


def example_input() -> np.ndarray:
    """A 32x32 RGB crop of skimage's astronaut with Gaussian noise sigma 25 (seeded)."""
    from components.blocks.data.images import skimage_images

    clean = skimage_images(["astronaut"])[0][1][200:232, 200:232]
    rng = np.random.default_rng(0)
    return (clean + rng.normal(0, 25 / 255, clean.shape)).astype(np.float32)
