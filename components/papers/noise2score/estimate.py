"""Blind noise-model estimation: which level (and, with ``eval.estimate.family: matching``, which family).

By default the served model takes the family from the residual's variance function (variance.py,
right in 35 of 42 held-out cases against 20 for the rule below) and the level from this module.

**The paper's rule and why it is not used here.** The official code (models/Gaussian_model.py,
``noise_model_estimation``, ``forward_search_*``) probes an *unconditioned* score network with a
tiny perturbation and reads the Tweedie power p and the level off finite differences of l'(y).
The score network here is told the family and the level (model.py), and its curvature is the
told model's own (-1 / (phi V(y)) plus the smooth image term), so that rule would return what it
was told. (With an unconditioned network, the rule read Poisson and Gamma alike: issue 10 §3.)

**Ours: choose the score model that explains the image best, by the AR-DAE loss itself.** For a
family F and level lambda the network gives a score model s_{F,lambda}. On the noisy image y
alone (no clean image), the antithetic AR-DAE loss of losses.py, less its constant E[u^2] and over
sigma_a^2,

    J(F, lambda) = mean( (s_+^2 + s_-^2) / 2 + u (s_+ - s_-) / sigma_a ),  s_+- = s(y +- sigma_a u)
                 ~ mean( s(y)^2 + 2 div s(y) ),

is the implicit score-matching objective (Hyvarinen 2005), which equals the Fisher divergence
between the model and the noisy image's distribution up to a constant that does not depend on
the model. So the model with the least J is the one whose score is closest to the truth: for an
oracle D = x, J is minimised exactly at the true level of each family (tests), and families
differ in how the noise variance follows intensity (phi, phi x, phi x^2), which J sees across
the image's intensities. The same u (common random numbers) is used for every candidate, so
their differences are not drowned by the probe's own noise.

Search: for each family, J on a log-spaced grid of levels over its training range, then the
minimum of a parabola through the best grid point and its neighbours (in log level). Pixels at
exactly 0 or 1 (clipped) are left out: there the noise model does not hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from components.papers.noise2score.noise import is_grey

ScoreModel = Callable[[torch.Tensor, str, torch.Tensor], torch.Tensor]  # (y (B,C,H,W), family, levels (B,)) -> l'(y)


def matching_losses(
    score: ScoreModel, y: torch.Tensor, family: str, levels: torch.Tensor, u: torch.Tensor, sigma_a: float
) -> torch.Tensor:
    """J of the module doc for each level of ``levels`` ``(L,)``, on ``y`` ``(1, C, H, W)`` with probe ``u``.

    One batched forward of the 2L perturbed copies; NaN where every pixel is clipped.
    """
    keep = ((y > 0) & (y < 1)).expand(len(levels), *y.shape[1:])
    z = torch.cat(
        [(y + sigma_a * u).expand(len(levels), *y.shape[1:]), (y - sigma_a * u).expand(len(levels), *y.shape[1:])]
    )
    s = score(z, family, torch.cat([levels, levels]))
    s_plus, s_minus = s[: len(levels)], s[len(levels) :]
    per = (0.5 * (s_plus**2 + s_minus**2) + u * (s_plus - s_minus) / sigma_a).double()
    n = keep.flatten(1).sum(1)
    return torch.where(
        n > 0, (per * keep).flatten(1).sum(1) / n.clamp_min(1), torch.full_like(n, math.nan, dtype=per.dtype)
    )


def _parabola_min(t: Sequence[float], j: Sequence[float]) -> tuple[float, float]:
    """Vertex ``(t*, j*)`` of the parabola through three points (the middle one the lowest)."""
    (t0, t1, t2), (j0, j1, j2) = t, j
    den = (t0 - t1) * (t0 - t2) * (t1 - t2)
    a = (t2 * (j1 - j0) + t1 * (j0 - j2) + t0 * (j2 - j1)) / den
    b = (t2**2 * (j0 - j1) + t1**2 * (j2 - j0) + t0**2 * (j1 - j2)) / den
    if a <= 0:
        return t1, j1
    tv = min(max(-b / (2 * a), t0), t2)
    c = j1 - a * t1**2 - b * t1
    return tv, a * tv**2 + b * tv + c


def best_level(
    score: ScoreModel,
    y: torch.Tensor,
    family: str,
    level_range: tuple[float, float],
    u: torch.Tensor,
    sigma_a: float,
    grid: int,
) -> tuple[float, float]:
    """``(level, J)`` of ``family`` minimising J over ``grid`` log-spaced levels in ``level_range``, refined
    by the parabola through the best one and its neighbours (in log level)."""
    lo, hi = (math.log(v) for v in level_range)
    ts = [lo + (hi - lo) * i / max(grid - 1, 1) for i in range(grid)]
    js = matching_losses(score, y, family, torch.tensor(ts, dtype=y.dtype).exp(), u, sigma_a).tolist()
    finite = [i for i, j in enumerate(js) if math.isfinite(j)]
    if not finite:
        return math.nan, math.nan
    i = min(finite, key=lambda k: js[k])
    if 0 < i < grid - 1 and math.isfinite(js[i - 1]) and math.isfinite(js[i + 1]):
        t, j = _parabola_min(ts[i - 1 : i + 2], js[i - 1 : i + 2])
        return math.exp(t), j
    return math.exp(ts[i]), js[i]


def probe(y: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The probe u for ``y`` ``(1, C, H, W)``: standard normal, grey (one draw per pixel) for a grey
    picture, as in training (losses.ardae_loss)."""
    u = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype)
    return u[:, :1].expand_as(u).contiguous() if is_grey(y) else u


def select_noise_model(
    score: ScoreModel,
    y: torch.Tensor,
    ranges: dict[str, tuple[float, float]],
    sigma_a: float = 0.01,
    grid: int = 5,
    seed: int = 0,
) -> tuple[str, float, dict[str, tuple[float, float]]]:
    """The family and level with the least J (module doc), and every family's ``(level, J)``.

    Args:
        score: ``(y, family, level) -> l'(y)``, the score network told a noise model.
        y: noisy image ``(1, C, H, W)`` in [0, 1].
        ranges: the candidate families and the level range searched for each.
        sigma_a: the probe's perturbation (small against the noise, large against float32 rounding).
        grid: levels per family before the parabolic refinement.
        seed: of the probe u, shared by every candidate (common random numbers).
    """
    u = probe(y, seed)
    fits = {f: best_level(score, y, f, r, u, sigma_a, grid) for f, r in ranges.items()}
    usable = {f: v for f, v in fits.items() if math.isfinite(v[1])}
    if not usable:
        raise ValueError("no usable pixels to estimate the noise model (all clipped at 0 or 1)")
    family = min(usable, key=lambda f: usable[f][1])
    return family, usable[family][0], fits
