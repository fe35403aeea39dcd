"""Losses, as pure functions, and the sigma_a draw of the AR-DAE.

AR-DAE (amortized residual denoising autoencoder; Lim et al. 2020), the score-matching loss of
Noise2Score (Kim & Ye 2021, Eq. 16; official code cubeyoung/Noise2Score models/networks.py,
``UNet.forward``: ``F.mse_loss(std * log_prob, -mu)``):

    y_bar = y + sigma_a u,  u ~ N(0, I)
    L = E || sigma_a s(y_bar) + u ||^2

Only noisy images enter: no clean image is ever seen by this loss.

**Why the draw of sigma_a matters.** The network is not conditioned on sigma_a, so for a draw
sigma_a ~ pi its pointwise optimum is not the score of y but (``ardae_optimum_gaussian``)

    s*(z) = -E[sigma_a u | z] / E[sigma_a^2 | z] = sum_k w_k(z) sigma_k^2 grad log p_k(z) / sum_k w_k(z) sigma_k^2,

a sigma_a^2-weighted mixture of the scores of y smoothed by each sigma_k (p_k = p_y * N(0, sigma_k^2),
w_k ~ pi_k p_k(z)). To first order it is the score of y smoothed by an extra variance
E[sigma_a^4] / E[sigma_a^2], which is (sigma_max^2 + sigma_min^2) / 2 for a log-uniform draw: 0.005
for the grid [1e-3, 0.1], half the variance of Gaussian noise at sigma = 25/255. Hence the official
Noise2Score schedule (models/Gaussian_model.py and models/Gamma_model.py, ``set_sigma``):
sigma_a = sigma_max (1 - perc) + sigma_min perc with perc = min((iter + 1) / 22000, 1), one value
per batch, annealed linearly from 0.05 to 0.001 and then held at sigma_min, so the network ends on
the score smoothed by sigma_min^2 = 1e-6 only. ``schedule="grid"`` keeps the per-sample log-grid
draw of the CVPR'22 code (cubeyoung/NoiseAdaptive2Score models/*_model.py, ``set_sigma``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def sigma_grid(sigma_min: float, sigma_max: float, levels: int) -> torch.Tensor:
    """exp(linspace(log sigma_max, log sigma_min, levels)): the CVPR'22 code's AR-DAE grid."""
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), levels, dtype=torch.float64)


def annealed_sigma(step: int, anneal_steps: int, sigma_min: float, sigma_max: float) -> float:
    """The official linear annealing (Noise2Score ``set_sigma``): sigma_max -> sigma_min, then held.

    ``step`` is 0-based within the phase; ``anneal_steps`` the steps it takes to reach sigma_min
    (the official 22000 counts samples, ``epoch_iter += batch_size``; here it counts steps).
    """
    perc = min((step + 1) / float(max(anneal_steps, 1)), 1.0)
    return sigma_max * (1 - perc) + sigma_min * perc


def draw_sigma_a(
    schedule: str,
    step: int,
    anneal_steps: int,
    sigma_min: float,
    sigma_max: float,
    levels: int,
    batch: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """sigma_a for one batch, ``(batch,)`` float64: ``anneal`` (one value per batch) or ``grid``."""
    if schedule == "anneal":
        return torch.full((batch,), annealed_sigma(step, anneal_steps, sigma_min, sigma_max), dtype=torch.float64)
    if schedule == "grid":
        grid = sigma_grid(sigma_min, sigma_max, levels)
        return grid[torch.randint(0, levels, (batch,), generator=generator)]
    raise ValueError(f"unknown sigma_a schedule {schedule!r}; expected 'anneal' or 'grid'")


def ardae_loss(
    score_net: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    sigma_a: torch.Tensor,
    generator: torch.Generator,
    antithetic: bool = False,
    grey: torch.Tensor | None = None,
) -> torch.Tensor:
    """AR-DAE loss on noisy ``y`` ``(B, C, H, W)`` with one ``sigma_a`` per sample ``(B,)``.

    ``F.mse_loss(sigma_a * s(y_bar), -u)``: the mean over pixels, as in the official code.

    ``grey`` ``(B,)`` marks grey pictures (equal channels, grey noise) carried in C channels: their
    u is drawn once per pixel and repeated over the channels, i.e. the AR-DAE of the one-channel
    image they are. A colour u would probe directions in which a grey picture's density is a point
    mass, whose smoothed score -u / sigma_a is huge and says nothing about the noise (ours).

    ``antithetic``: evaluate every sample at u and at -u (2B network evaluations). u and -u are
    equally likely, so the expected loss and its optimum are unchanged; only the Monte Carlo
    estimate changes. Its variance is much lower at small sigma_a: the cross terms 2 sigma_a s.u
    that dominate the one-sided estimate cancel to first order, leaving the finite-difference
    form of implicit score matching. Ours, not the official code's (README, "what differs").
    """
    sa = sigma_a.to(y.dtype).view(-1, *([1] * (y.dim() - 1))).to(y.device)
    u = torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
    if grey is not None and bool(grey.any()):
        u = torch.where(grey.view(-1, *([1] * (y.dim() - 1))).to(y.device), u[:, :1].expand_as(u), u)
    if antithetic:
        y, sa, u = torch.cat([y, y]), torch.cat([sa, sa]), torch.cat([u, -u])
    return F.mse_loss(sa * score_net(y + sa * u), -u)


def ardae_optimum_gaussian(
    z: torch.Tensor, mean: float, var: float, sigmas: torch.Tensor, probs: torch.Tensor
) -> torch.Tensor:
    """Exact minimiser of the AR-DAE loss for scalar data y ~ N(mean, var) and sigma_a ~ (sigmas, probs).

    Given sigma_k, z = y + sigma_k u ~ N(mean, var + sigma_k^2) and E[u | z] = sigma_k (z - mean) / (var + sigma_k^2),
    so s*(z) = -(z - mean) sum_k w_k sigma_k^2 / (var + sigma_k^2) / sum_k w_k sigma_k^2 with
    w_k ~ probs_k N(z; mean, var + sigma_k^2) (module docstring). ``z`` any shape; float64 out.
    """
    z = z.double()[..., None]
    s2 = sigmas.double() ** 2
    tot = var + s2
    logw = probs.double().log() - 0.5 * tot.log() - 0.5 * (z - mean) ** 2 / tot
    w = torch.softmax(logw, dim=-1) * s2
    return -(z[..., 0] - mean) * (w / tot).sum(-1) / w.sum(-1)


def noise2clean_loss(
    denoiser: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """Supervised MSE of the Noise2Clean baseline: the upper bound the paper compares against."""
    return F.mse_loss(denoiser(y), x)
