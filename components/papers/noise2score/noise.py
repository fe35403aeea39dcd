"""The three noise models of the paper and how training draws their levels.

Levels: Gaussian sigma on the 0..255 scale (images are in [0, 1], so the standard deviation is
sigma / 255); Poisson zeta in ``y = zeta * Poisson(x / zeta)``; Gamma shape k in
``y = x * Gamma(k, 1/k)`` (mean x, variance x^2 / k). All randomness comes from a torch.Generator
so that a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

FAMILIES = ("gaussian", "poisson", "gamma")
# Tweedie power p of each family: Var(y) = phi * mu^p (Sec. 3 of the paper).
TWEEDIE_POWER = {"gaussian": 0.0, "poisson": 1.0, "gamma": 2.0}
# The evaluation settings: the paper's result tables (Gaussian sigma 25 / 50, Poisson zeta 0.01 / 0.05,
# Gamma k 100 / 50) plus Gaussian sigma 15, the light noise a user's photograph often carries.
EVAL_SETTINGS: tuple[tuple[str, float], ...] = (
    ("gaussian", 15.0),
    ("gaussian", 25.0),
    ("gaussian", 50.0),
    ("poisson", 0.01),
    ("poisson", 0.05),
    ("gamma", 100.0),
    ("gamma", 50.0),
)


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown noise family {family!r}; expected one of {', '.join(FAMILIES)}")
    return family


def dispersion(family: str, level: float) -> float:
    """The Tweedie dispersion phi of a family at a level: sigma^2, zeta, 1/k."""
    check_family(family)
    if family == "gaussian":
        return (level / 255.0) ** 2
    return level if family == "poisson" else 1.0 / level


def level_from_dispersion(family: str, phi: float) -> float:
    """Inverse of ``dispersion``."""
    check_family(family)
    if family == "gaussian":
        return math.sqrt(max(phi, 0.0)) * 255.0
    return phi if family == "poisson" else 1.0 / max(phi, 1e-12)


def sample_level(low: float, high: float, generator: torch.Generator) -> float:
    """Log-uniform in [low, high], one draw per batch (models/*_model.py, set_phi)."""
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def add_noise(x: torch.Tensor, family: str, level: float, generator: torch.Generator) -> torch.Tensor:
    """Corrupt clean ``x`` (any shape, values in [0, 1]) with the family's noise at ``level``."""
    check_family(family)
    if level <= 0:
        raise ValueError(f"noise level must be positive, got {level}")
    if family == "gaussian":
        return x + (level / 255.0) * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    if family == "poisson":
        return level * torch.poisson(x.clamp_min(0) / level, generator=generator)
    # Gamma(k, scale 1/k): torch's own gamma sampler takes no generator, so draw Marsaglia-Tsang
    # samples from generator-driven normals and uniforms (boosted by U^(1/k) when k < 1).
    shape = torch.full_like(x, level + 1.0 if level < 1 else level)
    g = _gamma(shape, generator)
    if level < 1:
        g = g * torch.rand(x.shape, generator=generator, dtype=x.dtype) ** (1.0 / level)
    return x * g / level


def is_grey(x: torch.Tensor) -> bool:
    """True when the channels of ``(C, H, W)`` or ``(1, C, H, W)`` are all equal (a grey picture)."""
    x = x.reshape(-1, *x.shape[-2:])
    return bool((x == x[:1]).all())


def corrupt(x: torch.Tensor, family: str, levels: Sequence[float], generator: torch.Generator) -> torch.Tensor:
    """Noisy ``(B, 3, H, W)`` from clean ``x``, one level per sample: ``add_noise`` on colour images, and
    on grey ones (equal channels) noise drawn once and repeated over the channels, since a grey
    photograph has one channel (its noise is grey too)."""
    if len(levels) != x.shape[0]:
        raise ValueError(f"expected {x.shape[0]} levels, got {len(levels)}")
    out = []
    for xi, level in zip(x.split(1), levels, strict=True):
        if is_grey(xi):
            out.append(add_noise(xi[:, :1], family, level, generator).expand_as(xi))
        else:
            out.append(add_noise(xi, family, level, generator))
    return torch.cat(out)


def clip_quantize(y: torch.Tensor) -> torch.Tensor:
    """What a saved photograph keeps of a noisy image: clipped to [0, 1] and rounded to 8 bits.

    The paper's test images are not clipped (its noise is added in float); the evaluation here
    also measures this harder, realistic case (issue 10: "clipped 8-bit").
    """
    return torch.round(y.clamp(0, 1) * 255.0) / 255.0


def noise_std(x: torch.Tensor, family: str, level: float) -> float:
    """Root-mean-square standard deviation of the family's noise on clean ``x`` (the 'true sigma').

    Var y = phi V(x) with V(x) = 1, x, x^2 (Tweedie power 0, 1, 2), averaged over the pixels.
    """
    phi = dispersion(family, level)
    v = x.double().clamp_min(0) ** TWEEDIE_POWER[family]
    return float((phi * v).mean().sqrt())


def _gamma(shape: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gamma(shape, 1) samples for shape >= 1 (Marsaglia & Tsang 2000), driven by ``generator``."""
    d = shape - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(shape)
    todo = torch.ones_like(shape, dtype=torch.bool)
    while todo.any():
        z = torch.randn(shape.shape, generator=generator, dtype=shape.dtype)
        u = torch.rand(shape.shape, generator=generator, dtype=shape.dtype)
        v = (1.0 + c * z) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-30)) < 0.5 * z**2 + d - d * v + d * torch.log(v.clamp_min(1e-30)))
        take = todo & ok
        out[take] = (d * v)[take]
        todo &= ~ok
    return out
