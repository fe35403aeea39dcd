"""Linear forward operators y = A x with their adjoints and a data-consistency map.

All act on real images ``x`` of shape ``(B, C, H, W)``. Inner products are the real ones,
``<u, v> = sum Re(conj(u) v)``, so for the complex Fourier measurements the adjoint of
``x -> M F x`` on real images is ``y -> Re(F^H M y)`` (tests check <A x, y> = <x, A^T y>).

``dc_pinv`` is the map used for data consistency, ``x <- x + dc_pinv(y - A x)``:

* downsampling: the exact pseudo-inverse ``A^+ = s^2 A^T`` (nearest upsampling), so the map is the
  orthogonal projection onto {x : A x = y} (= ILVR's low-pass replacement with this filter pair);
* masking: ``A^+ = A^T`` (mask replacement: known pixels are copied in);
* Fourier: ``A^T`` = k-space replacement followed by the real part, ``Re F^H ((1 - M) F x + M y)``:
  a composition of two orthogonal projections, hence non-expansive (CCDF's requirement), with
  every real x consistent with y as a fixed point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Downsample:
    """Average pooling by an integer factor ``s`` (the SR degradation; Sec. 4 of the paper uses x4).

    ``A``: ``(B, C, H, W) -> (B, C, H/s, W/s)``; ``A_adjoint``: nearest upsampling divided by s^2.
    """

    def __init__(self, factor: int) -> None:
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        self.factor = int(factor)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"image sides {tuple(x.shape[-2:])} are not multiples of the factor {self.factor}")
        return F.avg_pool2d(x, self.factor)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return F.interpolate(y, scale_factor=self.factor, mode="nearest") / self.factor**2

    def dc_pinv(self, r: torch.Tensor) -> torch.Tensor:
        """The pseudo-inverse: A A^T = I / s^2, so A^+ = s^2 A^T (nearest upsampling)."""
        return self.A_adjoint(r) * self.factor**2


class Masking:
    """Pixel mask (inpainting): ``A x = m * x`` with m in {0, 1} ``(1 or B, 1 or C, H, W)``; self-adjoint."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask.to(device=x.device, dtype=x.dtype) * x

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.mask.to(device=y.device, dtype=y.dtype) * y

    def dc_pinv(self, r: torch.Tensor) -> torch.Tensor:
        return self.A_adjoint(r)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes (fastMRI convention: DC in the middle)."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Inverse of ``fft2c`` (unitary, so also its adjoint)."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


class FourierSampling:
    """Undersampled single-coil Fourier measurements (CS-MRI): ``A x = M * fft2c(x)`` (complex).

    ``mask``: ``(H, W)`` or broadcastable, in {0, 1}, in the centred k-space layout.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask.to(x.device) * fft2c(x.to(torch.complex64 if x.dtype != torch.float64 else torch.complex128))

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return ifft2c(self.mask.to(y.device) * y).real

    def dc_pinv(self, r: torch.Tensor) -> torch.Tensor:
        return self.A_adjoint(r)


def project(x: torch.Tensor, y: torch.Tensor, op) -> torch.Tensor:
    """The data-consistency map ``x + op.dc_pinv(y - op.A(x))`` (see the module docstring)."""
    return x + op.dc_pinv(y - op.A(x)).to(x.dtype)
