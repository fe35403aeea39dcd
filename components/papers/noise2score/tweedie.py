"""Tweedie's formula: the posterior mean of the clean image from the score of the noisy one.

Notation (paper -> code): y noisy image; x (or mu) clean image; l'(y) = grad_y log p(y) the score,
``score``; p the Tweedie power (Var y = phi mu^p): 0 Gaussian, 1 Poisson, 2 Gamma; phi the
dispersion: sigma^2, zeta, 1/k.

Closed forms of Noise2Score (Kim & Ye 2021, Table 1), used by the paper for the known families:

    Gaussian  x = y + sigma^2 l'(y)
    Poisson   x = (y + zeta/2) exp(zeta l'(y))
    Gamma     x = k y / ((k - 1) - y l'(y))

The distribution-independent form (arXiv 2112.03696, Sec. 3): with the saddle-point approximation
p(y) ~ (2 pi phi y^p)^(-1/2) exp(-d(y, mu) / (2 phi)) of a Tweedie density, the natural parameter
is theta = mu^(1-p) / (1-p) and the carrier is log b(y) = -1/2 log(2 pi phi y^p) - y^(2-p) / (phi (1-p)(2-p)).
Tweedie's formula E[theta | y] = phi (l'(y) - d/dy log b(y)) then gives

    mu = [ y^(1-p) + (1-p) phi (l'(y) + p / (2y)) ]^(1/(1-p))        (p != 1)
    mu = y exp(phi (l'(y) + 1 / (2y)))                                (p == 1)

which is exactly the Gaussian form at p = 0 and the Gamma form at p = 2; at p = 1 it is the
Poisson form up to first order in zeta (y exp(zeta/(2y)) ~ y + zeta/2).
"""

from __future__ import annotations

import torch

from components.papers.noise2score.noise import check_family

_EPS = 1e-6
_FLOOR = 1e-3  # x and y floor of the Poisson and Gamma likelihood scores (intensities in [0, 1])


def gaussian(y: torch.Tensor, score: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """x = y + sigma^2 l'(y); ``sigma`` is the standard deviation on the image's own scale."""
    return y + sigma**2 * score


def poisson(y: torch.Tensor, score: torch.Tensor, zeta: float | torch.Tensor) -> torch.Tensor:
    """x = (y + zeta/2) exp(zeta l'(y)) for y = zeta Poisson(x / zeta)."""
    return (y + zeta / 2) * torch.exp(zeta * score)


def gamma(y: torch.Tensor, score: torch.Tensor, k: float | torch.Tensor) -> torch.Tensor:
    """x = k y / ((k - 1) - y l'(y)) for y = x Gamma(k, 1/k)."""
    denom = (k - 1) - y * score
    denom = torch.where(denom.abs() < _EPS, torch.full_like(denom, _EPS), denom)
    return k * y / denom


def denoise(y: torch.Tensor, score: torch.Tensor, family: str, level: float | torch.Tensor) -> torch.Tensor:
    """Closed-form denoiser of a family at a level (sigma on 0..255, zeta, or k; a float or a per-sample tensor)."""
    check_family(family)
    if family == "gaussian":
        return gaussian(y, score, level / 255.0)
    return poisson(y, score, level) if family == "poisson" else gamma(y, score, level)


def likelihood_score(y: torch.Tensor, x: torch.Tensor, family: str, level: float | torch.Tensor) -> torch.Tensor:
    """d/dy log p(y | x) of the family's noise model, the inverse of ``denoise`` (ours, model.py).

    Gaussian ``(x - y) / sigma^2``; Poisson ``(log x - log(y + zeta/2)) / zeta``, the continuous form
    whose Tweedie step ``(y + zeta/2) exp(zeta s)`` is x; Gamma ``(k - 1) / y - k / x``, the score
    of ``y = x Gamma(k, 1/k)``. So ``denoise(y, likelihood_score(y, x, ...), ...) == x``: a score
    network written as ``likelihood_score(y, D(y))`` makes Tweedie's estimate its own output D(y),
    and every score has one such D (the map is a bijection), so the AR-DAE optimum is unchanged.
    ``level`` is a float or a tensor broadcastable to ``y`` (one level per sample). x and y are
    kept above ``_FLOOR`` for Poisson and Gamma (their densities live on y > 0).
    """
    check_family(family)
    if family == "gaussian":
        return (x - y) / (level / 255.0) ** 2
    if family == "poisson":
        return (x.clamp_min(_FLOOR).log() - (y + level / 2).clamp_min(_FLOOR).log()) / level
    return (level - 1) / y.clamp_min(_FLOOR) - level / x.clamp_min(_FLOOR)


def tweedie_general(y: torch.Tensor, score: torch.Tensor, p: float, phi: float) -> torch.Tensor:
    """The saddle-point Tweedie denoiser for any power ``p`` and dispersion ``phi`` (see module doc).

    ``y`` must be positive where ``p > 0`` (the Tweedie densities with p >= 1 live on y > 0).
    """
    if p == 0:
        return y + phi * score
    yp = y.clamp_min(_EPS)
    if abs(p - 1.0) < 1e-9:
        return yp * torch.exp(phi * (score + 1.0 / (2 * yp)))
    base = yp ** (1 - p) + (1 - p) * phi * (score + p / (2 * yp))
    return base.clamp_min(_EPS) ** (1.0 / (1 - p))
