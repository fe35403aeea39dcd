"""Blind noise-model estimation from the score network (paper Sec. 3, "noise model estimation").

Follows the official code (models/Gaussian_model.py: ``noise_model_estimation`` and
``forward_search_gau|poi|gamma``), which probes the learned score with a tiny perturbation
y_e = y + eps n and reads the noise model off finite differences:

* Tweedie power p: with w = 2 (y_e l'(y_e) - y l'(y)), a = log(y_e / y), b = 2 y l'(y), averaged
  over the pixels where |w / (b + 2.5)| <= 1e-6, p is the larger root of
  a p^2 + a (b - 2) p + (w - 2 a b) = 0, i.e. (p + b)(p - 2) = -w / a. The family is Gaussian for
  p < 0.9, Poisson for 0.9 <= p < 1.9, Gamma for p >= 1.9 (``forward_estimate``).
* The level, given the family, from the score's slope Delta l' = l'(y_e) - l'(y):
  Gaussian sigma^2 = median(clamp(-eps n / Delta l', 0, 1)); Poisson zeta = median(-y +
  sqrt(y^2 - 2 eps n / Delta l')); Gamma 1/k = median(c / (Delta l' + c)) with c = 1/y_e - 1/y.

Everything here runs in float64: the differences are of order eps = 1e-5, below float32's
resolution of a network output. The official code also rounds zeta and 1/k to two decimals; we do
not, since that erases the level at zeta = 0.005 or k = 120.

``estimate_power_slope`` (ours, the default: ``eval.power_method = "slope"``) reads p off the
same finite-difference probe in a more robust way. Under the saddle-point density (Sec. 3),
l'(y) = -p/(2y) - (y^(1-p) - mu^(1-p)) / (phi (1-p)), so the local curvature satisfies
-1 / l''(y) = phi y^p / (1 - p phi / (2 y^(2-p))) ~ phi y^p: the variance function of the Tweedie
family. With v = -eps n / Delta l' (the official Gaussian level estimator's per-pixel quantity),
the median of v in quantile bins of y, fitted as log v = log phi + p log y, gives p (slope) and
phi (intercept). Medians per bin make it robust to textured pixels where the prior dominates
l''. On exact scores it returns p within 0.1 for all six paper settings (tests), where the
official rule scatters over [-1.3, 4.2]. Its family thresholds are the midpoints 0.5 / 1.5.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from components.papers.noise2score.noise import FAMILIES

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
POWER_THRESHOLDS = (0.9, 1.9)  # models/Gaussian_model.py, forward_estimate
SLOPE_THRESHOLDS = (0.5, 1.5)  # midpoints between the powers 0, 1, 2 (ours, for the slope fit)


def family_from_power(p: float, thresholds: tuple[float, float] = POWER_THRESHOLDS) -> str:
    """Gaussian below ``thresholds[0]``, Poisson below ``thresholds[1]``, Gamma above.

    NaN counts as Gaussian (p = 0). The default thresholds are the official code's (0.9 / 1.9).
    """
    if math.isnan(p) or p < thresholds[0]:
        return "gaussian"
    return "poisson" if p < thresholds[1] else "gamma"


def _probe(score_fn: ScoreFn, y: torch.Tensor, eps: float, generator: torch.Generator):
    y = y.double()
    step = eps * torch.randn(y.shape, generator=generator, dtype=torch.float64)
    s, s_e = score_fn(y), score_fn(y + step)
    return y, step, s, s_e


def estimate_power(score_fn: ScoreFn, y: torch.Tensor, eps: float, generator: torch.Generator) -> float:
    """The Tweedie power p of the noise in ``y`` (``(1, C, H, W)``), from the score network."""
    y, step, s, s_e = _probe(score_fn, y, eps, generator)
    y_e = y + step
    w = 2 * (y_e * s_e - y * s)
    a = torch.log(y_e / y)  # NaN where y <= 0: dropped by the NaN-means below
    b = 2 * y * s
    keep = (w / (b + 2.5)).abs() <= 1e-6
    if not keep.any():
        return float("nan")
    w_bar, b_bar = w[keep].nanmean(), b[keep].nanmean()
    first = a * (b_bar - 2)
    disc = (first**2 - 4 * a * (w_bar - 2 * a * b_bar)).sqrt()
    p1 = ((-first + disc) / (2 * a)).nanmean()
    p2 = ((-first - disc) / (2 * a)).nanmean()
    return float(torch.maximum(p1, p2))


def estimate_power_slope(
    score_fn: ScoreFn, y: torch.Tensor, eps: float, generator: torch.Generator, bins: int = 12,
    y_range: tuple[float, float] = (0.03, 0.97), min_count: int = 16,
) -> tuple[float, float]:
    """``(p, phi)`` from the fit log median(-1/l'') = log phi + p log y (see the module doc).

    Args:
        score_fn: ``y -> l'(y)``, float64 in and out.
        y: noisy image ``(1, C, H, W)`` in about [0, 1].
        eps: finite-difference step (1e-5, as the official code).
        generator: draws the probe direction n.
        bins: quantile bins of y; ``y_range`` keeps away from 0 and 1, where clipping and
            log y misbehave; bins with fewer than ``min_count`` usable pixels are skipped.

    Returns:
        The power and the dispersion; ``(nan, nan)`` when fewer than two bins are usable.
    """
    y, step, s, s_e = _probe(score_fn, y, eps, generator)
    v = -step / (s_e - s)  # ~ -1 / l''(y) per pixel: the local variance phi V(y)
    keep = torch.isfinite(v) & (v > 0) & (y > y_range[0]) & (y < y_range[1])
    v, yk = v[keep], y[keep]
    if yk.numel() < 2 * min_count:
        return float("nan"), float("nan")
    edges = torch.quantile(yk, torch.linspace(0, 1, bins + 1, dtype=yk.dtype))
    xs, ys = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (yk >= lo) & (yk <= hi)
        if int(sel.sum()) >= min_count:
            xs.append(yk[sel].median().log())
            ys.append(v[sel].median().log())
    if len(xs) < 2 or float(torch.stack(xs).std()) < 1e-6:
        return float("nan"), float("nan")
    design = torch.stack([torch.stack(xs), torch.ones(len(xs), dtype=y.dtype)], dim=1)  # (bins, 2)
    slope, intercept = torch.linalg.lstsq(design, torch.stack(ys)[:, None]).solution[:, 0]
    return float(slope), float(intercept.exp())


def estimate_family(
    score_fn: ScoreFn, y: torch.Tensor, eps: float, generator: torch.Generator, method: str = "slope"
) -> tuple[str, float]:
    """``(family, p)`` by the chosen power estimator: ``slope`` (ours) or ``official``."""
    if method == "slope":
        p = estimate_power_slope(score_fn, y, eps, generator)[0]
        return family_from_power(p, SLOPE_THRESHOLDS), p
    if method == "official":
        p = estimate_power(score_fn, y, eps, generator)
        return family_from_power(p), p
    raise ValueError(f"unknown power estimator {method!r}; expected 'slope' or 'official'")


def estimate_level(score_fn: ScoreFn, y: torch.Tensor, family: str, eps: float, generator: torch.Generator) -> float:
    """The level of a known family: sigma on 0..255, zeta, or k."""
    y, step, s, s_e = _probe(score_fn, y, eps, generator)
    ds = s_e - s
    ds = torch.where(ds == 0, torch.full_like(ds, -1e-30), ds)
    if family == "gaussian":
        var = torch.clamp(-step / ds, 0, 1).median()
        return float(var.sqrt()) * 255.0
    if family == "poisson":
        c = step / ds
        return float(torch.nanmedian(-y + torch.sqrt(y**2 - 2 * c)))
    if family == "gamma":
        c = 1 / (y + step) - 1 / y
        inv_k = torch.nanmedian(c / (ds + c))
        return float(1.0 / inv_k) if float(inv_k) > 0 else float("nan")
    raise ValueError(f"unknown noise family {family!r}; expected one of {', '.join(FAMILIES)}")
