"""The degradation: a 1-D Gaussian blur along the elevational axis (the known PSF).

A mechanically swept 3-D probe has its worst resolution across the sweep (elevational) axis: the
beam is wide out of the B-mode plane. We model that as a Gaussian PSF of width ``sigma`` along that
axis only, so every plane that contains the elevational axis is blurred in-plane by the same known
1-D kernel (Richardson-Lucy gets exactly this PSF) and the B-mode planes stay sharp in-plane.

``A`` uses zero padding, so with the symmetric kernel it is self-adjoint (``A_adjoint = A``;
tests check <A x, y> = <x, A y>); ``mode="reflect"`` is what the phantom degradation uses, so the
volume borders are not darkened.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised taps ``(2r + 1,)`` of a Gaussian with radius r = ceil(3 sigma)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).float()


class AxisBlur:
    """``A x``: Gaussian blur of width ``sigma`` along one axis of a tensor of any rank.

    Args:
        sigma: PSF sigma in voxels.
        axis: the blurred axis (negative counts from the end).
        mode: ``"zeros"`` (self-adjoint, for tests and RL's PSF) or ``"reflect"``.
    """

    def __init__(self, sigma: float, axis: int = -2, mode: str = "zeros") -> None:
        if mode not in ("zeros", "reflect"):
            raise ValueError(f"mode must be 'zeros' or 'reflect', got {mode!r}")
        self.sigma, self.axis, self.mode = float(sigma), axis, mode
        self.kernel = gaussian_kernel(sigma)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        moved = x.movedim(self.axis, -1)
        shape = moved.shape
        flat = moved.reshape(-1, 1, shape[-1])
        r = (len(self.kernel) - 1) // 2
        if self.mode == "reflect":
            if shape[-1] <= r:
                raise ValueError(f"axis of length {shape[-1]} too short for reflect padding of {r}")
            flat = F.pad(flat, (r, r), mode="reflect")
            pad = 0
        else:
            pad = r
        out = F.conv1d(flat, self.kernel.to(flat).view(1, 1, -1), padding=pad)
        return out.reshape(shape).movedim(-1, self.axis)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """The symmetric kernel with zero padding is self-adjoint."""
        if self.mode != "zeros":
            raise NotImplementedError("the adjoint is only exact for zero padding")
        return self.A(y)

    def psf2d(self) -> np.ndarray:
        """The PSF of an in-plane slice whose rows run along the blurred axis: ``(2r + 1, 1)``."""
        return self.kernel.numpy()[:, None].astype(np.float64)
