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

``estimate_power_curvature`` (ours, the default: ``eval.power_method = "curvature"``) fits the same
binned medians as ``v = c + phi y^p`` instead of ``phi y^p``. The offset c >= 0 is what a learned
score adds to the curvature: the AR-DAE optimum is the score of y smoothed by an extra variance
(losses.py; sigma_min^2 after annealing, 0.005 under the log grid [1e-3, 0.1]), so
-1/l'' ~ phi y^p + sigma_extra^2, and a pure power law reads that flat offset as p -> 0, which is
why Poisson and Gamma were classified Gaussian. The offset is degenerate where phi y^p is itself
flat over the observed y (p ~ 0, or phi -> 0): then v = c + phi y^p cannot tell c from phi, and
the fit reports p = 0 (Gaussian) unless the fitted v rises by at least ``min_rise`` (relative to
its value at the median y) across the observed range of y. p is chosen on a grid by the least
relative squared error, c and phi by non-negative least squares at each p.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from components.papers.noise2score.noise import FAMILIES, TWEEDIE_POWER, level_from_dispersion

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
    score_fn: ScoreFn,
    y: torch.Tensor,
    eps: float,
    generator: torch.Generator,
    bins: int = 12,
    y_range: tuple[float, float] = (0.03, 0.97),
    min_count: int = 16,
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


def curvature_bins(
    score_fn: ScoreFn,
    y: torch.Tensor,
    eps: float,
    generator: torch.Generator,
    bins: int = 12,
    y_range: tuple[float, float] = (0.03, 0.97),
    min_count: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binned medians ``(y_b, v_b)`` of the local variance v = -eps n / (l'(y + eps n) - l'(y)).

    Quantile bins of y inside ``y_range`` (away from clipping at 0 and 1); bins with fewer than
    ``min_count`` finite positive v are skipped. Empty tensors when nothing is usable.
    """
    y, step, s, s_e = _probe(score_fn, y, eps, generator)
    v = -step / (s_e - s)
    keep = torch.isfinite(v) & (v > 0) & (y > y_range[0]) & (y < y_range[1])
    v, yk = v[keep], y[keep]
    empty = torch.empty(0, dtype=torch.float64)
    if yk.numel() < 2 * min_count:
        return empty, empty
    edges = torch.quantile(yk[:: max(1, yk.numel() // 100_000)], torch.linspace(0, 1, bins + 1, dtype=yk.dtype))
    xs, vs = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (yk >= lo) & (yk <= hi)
        if int(sel.sum()) >= min_count:
            xs.append(yk[sel].median())
            vs.append(v[sel].median())
    if not xs:
        return empty, empty
    return torch.stack(xs), torch.stack(vs)


def fit_curvature(
    yb: torch.Tensor, vb: torch.Tensor, powers: torch.Tensor | None = None, min_rise: float = 0.3
) -> tuple[float, float, float]:
    """``(p, phi, c)`` of ``v = c + phi y^p`` on binned medians (module doc); NaNs if unusable.

    Relative residuals (weights 1/v_b), c >= 0 and phi >= 0 by non-negative least squares at each
    p of ``powers`` (default 0..3 step 0.05); p = 0 unless the fitted v rises by ``min_rise`` of its
    median-y value across the observed y (otherwise the offset and phi y^p cannot be told apart).
    """
    if yb.numel() < 3 or float((yb.max() / yb.min()).log()) < 0.2:
        return float("nan"), float("nan"), float("nan")
    powers = torch.arange(0.0, 3.0001, 0.05, dtype=torch.float64) if powers is None else powers
    wt = 1.0 / vb
    best: tuple[float, float, float, float] | None = None
    for p in powers.tolist():
        a = torch.stack([torch.ones_like(yb), yb**p], dim=1) * wt[:, None]  # (bins, 2) weighted design
        b = vb * wt
        if p == 0:  # the two columns coincide: all of v is phi
            coef = torch.stack([torch.zeros((), dtype=b.dtype), (a[:, 1] @ b) / (a[:, 1] @ a[:, 1])])
        else:
            coef = _nnls2(a, b)
        sse = float(((a @ coef - b) ** 2).sum())
        if best is None or sse < best[0] - 1e-12:
            best = (sse, p, float(coef[1]), float(coef[0]))
    assert best is not None, "powers must not be empty"
    _, p, phi, c = best
    ym, lo, hi = float(yb.median()), float(yb.min()), float(yb.max())
    rise = phi * (hi**p - lo**p) / max(c + phi * ym**p, 1e-300)
    if p > 0 and rise < min_rise:
        return 0.0, float(vb.median()), 0.0  # flat: the variance does not follow y (Gaussian)
    return p, phi, c


def _nnls2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Non-negative least squares for two columns: the unconstrained fit, else the best one-column fit."""
    coef = torch.linalg.lstsq(a, b[:, None]).solution[:, 0]
    if (coef >= 0).all():
        return coef
    cands = []
    for j in (0, 1):
        col = a[:, j]
        x = max(float(col @ b) / max(float(col @ col), 1e-300), 0.0)
        c = torch.zeros(2, dtype=a.dtype)
        c[j] = x
        cands.append((float(((a @ c - b) ** 2).sum()), c))
    return min(cands, key=lambda t: t[0])[1]


def estimate_power_curvature(
    score_fn: ScoreFn, y: torch.Tensor, eps: float, generator: torch.Generator, **bin_kwargs
) -> tuple[float, float, float]:
    """``(p, phi, c)`` of the fit -1/l''(y) = c + phi y^p on the probe's binned medians."""
    yb, vb = curvature_bins(score_fn, y, eps, generator, **bin_kwargs)
    return fit_curvature(yb, vb)


def estimate_family(
    score_fn: ScoreFn, y: torch.Tensor, eps: float, generator: torch.Generator, method: str = "slope"
) -> tuple[str, float]:
    """``(family, p)`` by the chosen power estimator: ``curvature`` or ``slope`` (ours), ``official``."""
    if method == "curvature":
        p = estimate_power_curvature(score_fn, y, eps, generator)[0]
        return family_from_power(p, SLOPE_THRESHOLDS), p
    if method == "slope":
        p = estimate_power_slope(score_fn, y, eps, generator)[0]
        return family_from_power(p, SLOPE_THRESHOLDS), p
    if method == "official":
        p = estimate_power(score_fn, y, eps, generator)
        return family_from_power(p), p
    raise ValueError(f"unknown power estimator {method!r}; expected 'curvature', 'slope' or 'official'")


def estimate_level_curvature(
    score_fn: ScoreFn, y: torch.Tensor, family: str, eps: float, generator: torch.Generator
) -> float:
    """The level of a known family from the fit v = c + phi y^p at the family's p (ours).

    Unlike the official formulas, the offset c (the sigma_a smoothing) does not leak into phi.
    Falls back to ``estimate_level`` when the fit is unusable.
    """
    yb, vb = curvature_bins(score_fn, y, eps, generator)
    p = TWEEDIE_POWER[family]
    if family != "gaussian" and yb.numel() >= 3:
        _, phi, _ = fit_curvature(yb, vb, torch.tensor([p], dtype=torch.float64), min_rise=0.0)
        if math.isfinite(phi) and phi > 0:
            return level_from_dispersion(family, phi)
    return estimate_level(score_fn, y, family, eps, generator)


def estimate_level(score_fn: ScoreFn, y: torch.Tensor, family: str, eps: float, generator: torch.Generator) -> float:
    """The level of a known family by the official formulas: sigma on 0..255, zeta, or k."""
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
