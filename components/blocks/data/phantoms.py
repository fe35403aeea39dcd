"""Synthetic MR-like phantoms: random ellipses with a smooth multiplicative texture.

The inverse-problems literature's standard test object (Shepp-Logan-like random ellipses, e.g.
Jin et al. 2017 FBPConvNet; Ongie et al. 2020): an outer "skull" ellipse, inner "tissue" ellipses
of random intensity, and a low-frequency texture (Gaussian-filtered white noise) so the images are
not piecewise constant. Magnitude images, float32 ``(size, size)`` in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _ellipse(yy: torch.Tensor, xx: torch.Tensor, cy: float, cx: float, ry: float, rx: float, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    return ((u / rx) ** 2 + (v / ry) ** 2) <= 1


def _smooth_field(size: int, sigma: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(1, 1, size, size, generator=generator)
    radius = max(1, int(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    k = k / k.sum()
    noise = F.pad(noise, (radius, radius, radius, radius), mode="reflect" if radius < size else "replicate")
    noise = F.conv2d(noise, k.view(1, 1, 1, -1))
    noise = F.conv2d(noise, k.view(1, 1, -1, 1))[0, 0]
    return noise / noise.std().clamp(min=1e-6)


def random_phantom(size: int, generator: torch.Generator, n_ellipses: tuple[int, int] = (4, 9), texture: float = 0.08) -> np.ndarray:
    """One phantom: float32 ``(size, size)`` in [0, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    img = torch.zeros(size, size)
    ry, rx = u(0.75, 0.95), u(0.6, 0.85)
    angle = u(-0.3, 0.3)
    img[_ellipse(yy, xx, 0.0, 0.0, ry, rx, angle)] = 1.0  # skull
    img[_ellipse(yy, xx, 0.0, 0.0, ry - 0.08, rx - 0.08, angle)] = u(0.3, 0.5)  # brain
    n = int(torch.randint(n_ellipses[0], n_ellipses[1] + 1, (1,), generator=generator))
    for _ in range(n):
        inside = _ellipse(yy, xx, u(-0.45, 0.45), u(-0.4, 0.4), u(0.05, 0.3), u(0.05, 0.3), u(0, math.pi))
        img[inside] = u(0.1, 0.9)
    img = img * (1 + texture * _smooth_field(size, size / 10, generator))
    return img.clamp(0, 1).numpy().astype(np.float32)


def phantoms(count: int, size: int, seed: int) -> np.ndarray:
    """``count`` phantoms ``(count, size, size)`` from one seed (train and eval use disjoint seeds)."""
    gen = torch.Generator().manual_seed(seed)
    return np.stack([random_phantom(size, gen) for _ in range(count)]) if count else np.zeros((0, size, size), np.float32)
