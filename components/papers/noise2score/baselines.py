"""The classical anchors of the evaluation: the best Gaussian filter and BM3D.

* Gaussian filter: ``scipy.ndimage.gaussian_filter`` over the two spatial axes, its width chosen
  per image by an **oracle** (the grid width with the highest PSNR against the clean image), so it
  is an upper bound on any Gaussian filter with a fixed rule.
* BM3D (Dabov et al. 2007; Makinen et al. 2020, the ``bm3d`` package): ``bm3d.bm3d`` for grey
  images, ``bm3d.bm3d_rgb`` (CBM3D, opponent colour space) for colour ones, given the **true**
  noise standard deviation. Poisson and Gamma noise are signal-dependent, so BM3D runs after the
  classical variance-stabilising transform with its true level: the Anscombe transform
  2 sqrt(y / zeta + 3/8) (unit variance) for Poisson, with the closed-form approximation of the
  exact unbiased inverse (Makitalo & Foi 2011), and log y (variance trigamma(k)) for Gamma,
  inverted with its mean bias digamma(k) - log k removed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from scipy.special import digamma, polygamma

from components.blocks.metrics.image import psnr_per_image
from components.papers.noise2score.noise import check_family, is_grey

FILTER_WIDTHS = tuple(np.round(np.arange(0.3, 3.01, 0.1), 2))  # pixels


def best_gaussian_filter(y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The oracle Gaussian filter of noisy ``y`` ``(1, 3, H, W)``: (filtered image, width in px)."""
    arr = y[0].double().numpy()
    best = None
    for w in FILTER_WIDTHS:
        out = torch.from_numpy(gaussian_filter(arr, (0, w, w), mode="reflect")).float()[None]
        score = float(psnr_per_image(out, x))
        if best is None or score > best[0]:
            best = (score, out, float(w))
    assert best is not None  # FILTER_WIDTHS is not empty
    return best[1], best[2]


def _bm3d(z: np.ndarray, sigma: float, grey: bool) -> np.ndarray:
    import bm3d

    if grey:
        return np.repeat(np.asarray(bm3d.bm3d(z[..., 0], sigma))[..., None], 3, axis=2)
    return np.asarray(bm3d.bm3d_rgb(z, sigma))


def bm3d_denoise(y: torch.Tensor, family: str, level: float) -> torch.Tensor:
    """BM3D of noisy ``y`` ``(1, 3, H, W)`` given the true family and level (module doc)."""
    check_family(family)
    grey = is_grey(y)
    z = y[0].permute(1, 2, 0).double().numpy()
    if family == "gaussian":
        out = _bm3d(z, level / 255.0, grey)
    elif family == "poisson":
        f = 2.0 * np.sqrt(np.maximum(z / level, 0.0) + 3.0 / 8.0)  # Anscombe: unit variance
        d = _bm3d(f, 1.0, grey)
        # closed-form approximation of the exact unbiased inverse (Makitalo & Foi 2011, eq. 8)
        inv = d**2 / 4 + math.sqrt(1.5) / (4 * d) - 11 / (8 * d**2) + 5 * math.sqrt(1.5) / (8 * d**3) - 1 / 8
        out = level * np.maximum(inv, 0.0)
    else:
        k = level
        f = np.log(np.maximum(z, 1.0 / 255.0))  # log: Var = trigamma(k), mean bias digamma(k) - log k
        d = _bm3d(f, math.sqrt(float(polygamma(1, k))), grey)
        out = np.exp(d - (float(digamma(k)) - math.log(k)))
    return torch.from_numpy(np.ascontiguousarray(out)).float().permute(2, 0, 1)[None]
