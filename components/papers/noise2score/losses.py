"""Losses, as pure functions.

AR-DAE (amortized residual denoising autoencoder; Lim et al. 2020), the score-matching loss of
Noise2Score (Kim & Ye 2021, Eq. 16; official code models/networks.py, ``UNet.forward``):

    y_bar = y + sigma_a u,  u ~ N(0, I)
    L = E || sigma_a s(y_bar) + u ||^2

whose minimiser tends to the score grad log p(y) of the NOISY images as sigma_a -> 0; sigma_a is
drawn per sample from a log-spaced grid between sigma_max and sigma_min (models/*_model.py).
Only noisy images enter: no clean image is ever seen by this loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def sigma_grid(sigma_min: float, sigma_max: float, levels: int) -> torch.Tensor:
    """exp(linspace(log sigma_max, log sigma_min, levels)): the official AR-DAE perturbation grid."""
    return torch.logspace(torch.log10(torch.tensor(sigma_max)), torch.log10(torch.tensor(sigma_min)), levels)


def ardae_loss(
    score_net: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """AR-DAE loss on noisy ``y`` ``(B, C, H, W)``; ``sigmas`` the grid to draw sigma_a from.

    Uses ``F.mse_loss(sigma_a * s(y_bar), -u)``, the mean over pixels as in the official code.
    """
    idx = torch.randint(0, len(sigmas), (y.shape[0],), generator=generator)
    sigma_a = sigmas[idx].to(y.dtype).view(-1, *([1] * (y.dim() - 1))).to(y.device)
    u = torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
    return F.mse_loss(sigma_a * score_net(y + sigma_a * u), -u)


def noise2clean_loss(denoiser: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Supervised MSE of the Noise2Clean baseline: the upper bound the paper compares against."""
    return F.mse_loss(denoiser(y), x)
