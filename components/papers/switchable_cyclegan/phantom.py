"""Synthetic 3-D ultrasound-like volumes with a clean truth and the probe's elevational blur.

The truth of one volume ``(N, N, N)`` with axes (elevational, axial, lateral):

* echogenicity: a background level with ellipsoidal inclusions (dark cyst-like and bright ones)
  and a smooth multiplicative texture (Gaussian-filtered white noise);
* fully developed speckle: the magnitude of a complex Gaussian field smoothed isotropically with
  sigma ``grain`` (Rayleigh-distributed, Goodman's model), normalised to mean 1, multiplied in;
* display scale ``clip(0.5 * echo * speckle, 0, 1)``.

The degraded volume is the truth blurred along the elevational axis by the known Gaussian PSF
(blur.AxisBlur, reflect padding) plus a little additive Gaussian noise, clipped to [0, 1]. Planes
that contain the elevational axis are blurred in-plane (rows = elevational); B-mode planes are only
averaged out of plane. Every draw comes from one torch.Generator, so a seed fixes the data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from components.papers.switchable_cyclegan.blur import AxisBlur, gaussian_kernel


def _smooth3d(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable isotropic Gaussian smoothing of ``(N, N, N)`` (reflect padding)."""
    k = gaussian_kernel(sigma)
    r = (len(k) - 1) // 2
    out = x
    for axis in range(3):
        moved = out.movedim(axis, -1)
        shape = moved.shape
        flat = F.pad(moved.reshape(-1, 1, shape[-1]), (r, r), mode="reflect" if r < shape[-1] else "replicate")
        out = F.conv1d(flat, k.view(1, 1, -1)).reshape(shape).movedim(-1, axis)
    return out


def _ellipsoid(grid: tuple[torch.Tensor, ...], centre: torch.Tensor, radii: torch.Tensor, angle: float) -> torch.Tensor:
    z, y, x = (g - c for g, c in zip(grid, centre, strict=True))
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * y + s * x, -s * y + c * x  # rotated in the axial-lateral plane
    return (z / radii[0]) ** 2 + (u / radii[1]) ** 2 + (v / radii[2]) ** 2 <= 1


def clean_volume(size: int, generator: torch.Generator, grain: float = 0.7) -> torch.Tensor:
    """One speckled truth volume ``(size,)*3`` float32 in [0, 1]."""
    lin = torch.linspace(-1, 1, size)
    grid = torch.meshgrid(lin, lin, lin, indexing="ij")

    def u(lo: float, hi: float, n: int = 1) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    echo = torch.full((size,) * 3, float(u(0.35, 0.55)))
    n_inc = int(torch.randint(3, 7, (1,), generator=generator))
    for _ in range(n_inc):
        level = float(u(0.02, 0.12)) if float(u(0, 1)) < 0.4 else float(u(0.7, 1.0))  # cyst or bright lesion
        echo[_ellipsoid(grid, u(-0.6, 0.6, 3), u(0.12, 0.4, 3), float(u(0, math.pi)))] = level
    echo = echo * (1 + 0.15 * _smooth3d(torch.randn((size,) * 3, generator=generator), size / 8).clamp(-3, 3))
    re = _smooth3d(torch.randn((size,) * 3, generator=generator), grain)
    im = _smooth3d(torch.randn((size,) * 3, generator=generator), grain)
    speckle = torch.sqrt(re**2 + im**2)
    speckle = speckle / speckle.mean()
    return (0.5 * echo * speckle).clamp(0, 1).float()


def degrade(volume: torch.Tensor, sigma: float, noise_std: float, generator: torch.Generator) -> torch.Tensor:
    """Elevational (axis 0) Gaussian blur + additive noise, clipped: ``(N, N, N) -> (N, N, N)``."""
    blurred = AxisBlur(sigma, axis=0, mode="reflect").A(volume)
    noise = noise_std * torch.randn(volume.shape, generator=generator) if noise_std > 0 else 0.0
    return (blurred + noise).clamp(0, 1)


def planes(volume: torch.Tensor, which: str = "all") -> list[torch.Tensor]:
    """The 2-D slices of a volume ``(E, A, L)``.

    ``which="elevational"``: the planes that contain the elevational axis, rows = elevational:
    ``vol[:, a, :]`` (elevational-lateral) and ``vol[:, :, l]`` (elevational-axial).
    ``which="all"``: those plus the B-mode planes ``vol[e]``.
    """
    out = [volume[:, a, :] for a in range(volume.shape[1])] + [volume[:, :, lat] for lat in range(volume.shape[2])]
    if which == "all":
        out += [volume[e] for e in range(volume.shape[0])]
    elif which != "elevational":
        raise ValueError(f"which must be 'all' or 'elevational', got {which!r}")
    return out
