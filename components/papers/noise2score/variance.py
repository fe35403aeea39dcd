"""Blind noise-model estimation from the Tweedie variance function Var[y | x] = phi mu^p (paper Sec. 3).

**The paper's rule.** A Tweedie noise model is fixed by its variance function: Var[y | x] = phi
mu^p with mu = E[y | x] = x, p = 0 (Gaussian, phi = sigma^2), 1 (Poisson, phi = zeta), 2 (Gamma,
phi = 1/k). The paper reads it off an unconditioned score network: from the saddle-point density
(tweedie.py), -1 / l''(y) ~ phi y^p, so it fits p and phi to finite differences of l'(y)
(official code: models/Gaussian_model.py ``noise_model_estimation``, ``forward_search_*``). The
network here is told the noise model (model.py), so its curvature is what it is told and that
reading would return the question. What the network does give is Tweedie's estimate of the
clean image, D(y) = E[x | y]; with it the same relation is measured directly on the image:

    r = y - D(y),  binned by D:  Var[r | D in bin b] ~ kappa_b phi mu_b^p  (+ 1/12 LSB^2, 8-bit rounding)

**kappa: how much of the noise the residual keeps.** D depends on y, so r is not the noise n:
to first order r = (I - J) n + (x - D(x)) with J = dD/dy, and the noise part has variance
sum_j (I - J)_ij^2 s_j^2 ~ s_i^2 ||row_i(I - J)||^2 (s slowly varying). The row norms are
estimated by Hutchinson's method with finite differences: for a standard normal probe v,
E[(v - (D(y + eps v) - D(y - eps v)) / (2 eps))_i^2] = ||row_i(I - J)||^2, averaged over each
bin's pixels (``residual_gain``). For a 1-px Gaussian blur kappa = 1 - 2 k_0 + sum k^2 ~ 0.76
(tests); for D = x (an oracle) kappa = 1.

**Robust to texture and to clipping.** The variance of a bin is read from the interquartile range
of its residuals, (IQR / 1.349)^2: edges where D errs are a minority in each bin and move the IQR
little, and clipping at 0 or 1 (a monotone map) leaves quantiles unchanged as long as it takes
less than a quarter of a bin; bins where more than ``MAX_CLIPPED`` of the pixels sit at 0 or 1
are left out (there a Poisson zero count is indistinguishable from clipping, too).

**Fit.** The only offset is the known 8-bit rounding variance q: a free offset c (``c + phi mu^p``)
nests the Gaussian model in the Poisson and Gamma ones (phi -> 0, c = sigma^2), so they always fit
at least as well and Gaussian noise is called Gamma even with the clean image known (measured:
Gaussian 15 and 25 on the test ramp; on the 42 held-out cases 32 right with the free offset, 35
without). For each family (p fixed), log phi minimises sum_b n_b (log v_b - log(phi mu_b^p + q))^2
(q = 1/12 LSB^2), i.e. least squares in log variance weighted by the bin sizes (the variance of a
log sample variance is ~ c / n); the family with the least weighted error wins, and a continuous
p-hat (the same fit over a grid of p) is reported as the paper's estimate of the Tweedie power.
The image estimate D depends on the noise model the network is told, so estimation alternates
(``estimate_noise_model``): start from a fixed 1-px blur of y, fit, tell the network the fit,
re-fit on its D.

**Use (predict.py).** This rule picks the family; the level within it is then the one that
minimises the AR-DAE matching loss (estimate.py). On the six held-out photographs x seven
settings (42 cases, one trained default model) it picked the true family in 35 cases against
20 for the matching loss alone (README).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from components.papers.noise2score.noise import TWEEDIE_POWER, is_grey, level_from_dispersion

Denoiser = Callable[[torch.Tensor], torch.Tensor]  # y (1, C, H, W) -> D(y), same shape

LSB_VAR = 1.0 / (12 * 255.0**2)  # variance of 8-bit rounding (uniform over one step)
MAX_CLIPPED = 0.2  # bins with more pixels than this at 0 or 1 are left out
IQR_TO_STD = 1.3489795  # IQR of a standard normal
MIN_BIN = 64  # pixels


@dataclass(frozen=True)
class VarianceBins:
    """Binned residual variances: bin means ``mu``, variances ``var`` (gain-corrected), sizes ``n``."""

    mu: np.ndarray
    var: np.ndarray
    n: np.ndarray

    def __len__(self) -> int:
        return len(self.mu)


@dataclass(frozen=True)
class NoiseFit:
    """The fitted noise model: ``family``, its ``level`` (sigma on 0..255, zeta or k), ``phi``, the
    continuous Tweedie power ``power`` (p-hat), per-family ``(weighted error, phi)`` in ``fits``, ``bins``."""

    family: str
    level: float
    phi: float
    power: float
    fits: dict[str, tuple[float, float]] = field(default_factory=dict)
    bins: int = 0


def one_channel(t: torch.Tensor, grey: bool) -> torch.Tensor:
    """The pixels of ``(1, C, H, W)`` as a flat float64 vector: one channel of a grey picture (its
    channels are one value repeated), every channel of a colour one (independent noise per channel)."""
    return (t[:, :1] if grey else t).flatten().double()


def residual_gain(
    denoise: Denoiser, y: torch.Tensor, probes: int = 2, eps: float = 0.01, seed: int = 0
) -> torch.Tensor:
    """Per-pixel Hutchinson estimate of ``||row_i(I - J)||^2`` (J = dD/dy), averaged over ``probes``.

    Grey pictures get grey probes (their noise is one value per pixel, repeated over channels).
    """
    gen = torch.Generator().manual_seed(seed)
    grey = is_grey(y)
    acc = torch.zeros_like(y, dtype=torch.float64)
    for _ in range(probes):
        v = torch.randn(y.shape, generator=gen, dtype=y.dtype)
        if grey:
            v = v[:, :1].expand_as(v).contiguous()
        jv = (denoise(y + eps * v) - denoise(y - eps * v)) / (2 * eps)
        acc += ((v - jv) ** 2).double()
    return acc / probes


def variance_bins(y: torch.Tensor, d: torch.Tensor, gain: torch.Tensor, bins: int = 12) -> VarianceBins:
    """Residual variance of ``y - d`` in ``bins`` quantile bins of ``d``, divided by the bin's mean ``gain``.

    Bins with fewer than ``MIN_BIN`` pixels, more than ``MAX_CLIPPED`` of them at 0 or 1, or a mean
    at or below 1e-3 are left out.
    """
    grey = is_grey(y)
    yy, dd, gg = one_channel(y, grey), one_channel(d, grey), one_channel(gain, grey)
    r = yy - dd
    edges = torch.quantile(dd, torch.linspace(0, 1, bins + 1, dtype=torch.float64))
    which = torch.bucketize(dd, edges[1:-1], right=True)  # 0 .. bins-1
    mu, var, n = [], [], []
    for b in range(bins):
        m = which == b
        count = int(m.sum())
        if count < MIN_BIN:
            continue
        clipped = float(((yy[m] <= 0) | (yy[m] >= 1)).double().mean())
        mean = float(dd[m].mean())
        if clipped > MAX_CLIPPED or mean <= 1e-3:
            continue
        q1, q3 = torch.quantile(r[m], torch.tensor([0.25, 0.75], dtype=torch.float64)).tolist()
        v = ((q3 - q1) / IQR_TO_STD) ** 2 / max(float(gg[m].mean()), 1e-3)
        mu.append(mean)
        var.append(max(v, 1e-12))
        n.append(count)
    return VarianceBins(np.array(mu), np.array(var), np.array(n, dtype=float))


def fit_dispersion(b: VarianceBins, p: float, q: float = LSB_VAR) -> tuple[float, float]:
    """``(weighted error, phi)`` of the model ``phi mu^p + q`` on the bins (least squares in log variance,
    weights n_b; golden-section search over log phi, the error being unimodal in it)."""
    lv, mp, w = np.log(b.var), b.mu**p, b.n / b.n.sum()

    def err(lphi: float) -> float:
        return float(np.sum(w * (lv - np.log(math.exp(lphi) * mp + q)) ** 2))

    lo, hi = -25.0, 5.0
    g = (math.sqrt(5) - 1) / 2
    a, c = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fc = err(a), err(c)
    for _ in range(80):
        if fa < fc:
            hi, c, fc = c, a, fa
            a = hi - g * (hi - lo)
            fa = err(a)
        else:
            lo, a, fa = a, c, fc
            c = lo + g * (hi - lo)
            fc = err(c)
    lphi = 0.5 * (lo + hi)
    return err(lphi), math.exp(lphi)


def fit_noise_model(b: VarianceBins, families: list[str], q: float = LSB_VAR) -> NoiseFit:
    """The family (Tweedie power fixed) with the least weighted error, its phi and level, and p-hat."""
    if len(b) < 1:
        raise ValueError("no usable pixels to estimate the noise model (too small, flat or clipped)")
    if len(b) < 3:  # too few intensities to see how the variance follows them: only a level
        families = ["gaussian"] if "gaussian" in families else families[:1]
    fits = {f: fit_dispersion(b, TWEEDIE_POWER[f], q) for f in families}
    family = min(fits, key=lambda f: fits[f][0])
    grid = np.round(np.arange(-1.0, 3.0001, 0.05), 2)
    power = float(grid[int(np.argmin([fit_dispersion(b, float(p), q)[0] for p in grid]))]) if len(b) >= 3 else math.nan
    phi = fits[family][1]
    return NoiseFit(family, level_from_dispersion(family, phi), phi, power, fits, len(b))


def estimate_noise_model(
    told: Callable[[torch.Tensor, str, float], torch.Tensor],
    y: torch.Tensor,
    ranges: dict[str, tuple[float, float]],
    rounds: int = 2,
    bins: int = 12,
    probes: int = 2,
    start_blur: float = 1.0,
) -> NoiseFit:
    """Alternate: D -> fit (family, level) -> tell the network -> D ... (module doc).

    Args:
        told: ``(y, family, level) -> D(y)``, the network's image estimate for a told noise model.
        y: noisy image ``(1, C, H, W)`` in [0, 1].
        ranges: candidate families and their level ranges; the level told to the network is kept
            inside its family's range (the network was trained there), the reported one is the fit.
        rounds: fits on the network's D after the first one on a ``start_blur``-px Gaussian blur.
        bins, probes: of ``variance_bins`` and ``residual_gain``.
    """
    from components.papers.noise2score.model import gaussian_blur

    families = list(ranges)

    def fit(denoise: Denoiser) -> NoiseFit:
        with torch.inference_mode():
            d = denoise(y)
            gain = residual_gain(denoise, y, probes)
        return fit_noise_model(variance_bins(y, d, gain, bins), families)

    def network(family: str, level: float) -> Denoiser:
        return lambda z: told(z, family, level)

    result = fit(lambda z: gaussian_blur(z, start_blur))
    for _ in range(rounds):
        lo, hi = ranges[result.family]
        result = fit(network(result.family, min(max(result.level, lo), hi)))
    return result
