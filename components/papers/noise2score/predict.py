"""Serving-side inference: denoise an image, estimate its noise model.

Images are float32 numpy arrays in [0, 1], ``(H, W)`` (grey) or ``(H, W, C)`` with C = 1 or 3;
grey images are repeated over the three channels for the network and averaged back.

``noise="auto"`` picks the family blindly. The paper estimates the noise model with the network
trained on the data at hand; a served model holds one network per family, so "auto" runs the
paper's power estimate with each network and keeps the family whose own network agrees with it
(its estimated power classifies as that family), the one closest to its nominal power when
several or none agree. That selection rule is ours, not the paper's. Estimation (family and
level) runs in float64 on the central 384x384 crop only: the noise model is global, and this keeps a
2048x2048 request within seconds; denoising always covers the whole image.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from components.papers.noise2score import tweedie
from components.papers.noise2score.estimate import estimate_family, estimate_level, estimate_level_curvature
from components.papers.noise2score.model import Noise2ScoreModel
from components.papers.noise2score.noise import FAMILIES, TWEEDIE_POWER

NOISE_CHOICES = ("auto", *FAMILIES)
MAX_SIDE = 4096
ESTIMATION_SIDE = 384  # the noise model is global: estimate it on a central crop (float64 is slow)


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


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)  # the estimator's probe: same answer for the same image


def _blind_family(model: Noise2ScoreModel, y: torch.Tensor, eps: float) -> tuple[str, float]:
    method = str(model.config.get("power_method", "slope"))
    best: tuple[float, str, float] | None = None
    for family in model.families:
        fam_hat, p = estimate_family(model.score_fn(family, float64=True), y, eps, _generator(), method)
        miss = abs(p - TWEEDIE_POWER[family]) if math.isfinite(p) else math.inf
        rank = (0.0 if fam_hat == family else 1.0) * 1e6 + miss
        if best is None or rank < best[0]:
            best = (rank, family, p)
    assert best is not None  # a model has at least one family (TrainConfig.families, min_length=1)
    return best[1], best[2]


def _level(model: Noise2ScoreModel, y: torch.Tensor, family: str, eps: float) -> float:
    """The level of ``family`` in ``y``: the curvature fit (default) or the official formulas."""
    fn = model.score_fn(family, float64=True)
    if str(model.config.get("power_method", "slope")) == "curvature":
        return estimate_level_curvature(fn, y, family, eps, _generator())
    return estimate_level(fn, y, family, eps, _generator())


def estimate(model: Noise2ScoreModel, image: np.ndarray) -> dict[str, float | str]:
    """``{"family", "level", "power"}`` of the noise in ``image`` (see the module doc)."""
    y = _estimation_crop(_to_tensor(image)[0])
    eps = float(model.config.get("fd_epsilon", 1e-5))
    family, power = _blind_family(model, y, eps)
    level = _level(model, y, family, eps)
    return {"family": family, "level": float(level), "power": float(power)}


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
    eps = float(model.config.get("fd_epsilon", 1e-5))
    probe = _estimation_crop(y)
    family = _blind_family(model, probe, eps)[0] if noise == "auto" else noise
    if family not in model.families:
        raise ValueError(f"this model has no network for {family!r} noise (it has {', '.join(model.families)})")
    if level is None:
        level = _level(model, probe, family, eps)
        if not (math.isfinite(level) and level > 0):
            raise ValueError(f"could not estimate a {family} noise level for this image; pass level")
    score = model.score_fn(family)(y)
    x = tweedie.denoise(y, score, family, level)
    return {"image": _from_tensor(x, shape), "family": family, "level": float(level)}


def example_input() -> np.ndarray:
    """A 32x32 RGB crop of skimage's astronaut with Gaussian noise sigma 25 (seeded)."""
    from components.blocks.data.images import skimage_images

    clean = skimage_images(["astronaut"])[0][1][200:232, 200:232]
    rng = np.random.default_rng(0)
    return (clean + rng.normal(0, 25 / 255, clean.shape)).astype(np.float32)
