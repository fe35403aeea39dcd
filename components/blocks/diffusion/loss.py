"""The DDPM training objective (Ho et al. 2020, Eq. 14, "L_simple"), a pure function:

    L = E_{t, x0, eps} || eps - eps_theta( sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t ) ||^2

with t uniform on {0..T-1} and eps ~ N(0, I).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from components.blocks.diffusion.schedule import q_sample

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``eps_model(x_t (B, C, H, W), t (B,) long) -> eps_hat (B, C, H, W)``."""


def ddpm_loss(
    eps_model: EpsModel, x0: torch.Tensor, abar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Eq. 14 on a batch ``x0`` ``(B, C, H, W)`` in [-1, 1]; t and eps are drawn from ``generator`` (CPU)."""
    b = x0.shape[0]
    t = torch.randint(0, abar.shape[0], (b,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    t = t.to(x0.device)
    x_t = q_sample(x0, t, noise, abar)
    return F.mse_loss(eps_model(x_t, t).float(), noise.float())
