"""Losses, as pure functions.

* The score model: DDPM's eps-prediction loss (Ho et al. 2020, Eq. 14), from the shared block.
* The feed-forward initialiser (the paper's "(b) a network", Sec. 3.3 / 4: a supervised solver
  whose output CCDF refines): MSE between the residual estimate x_simple + f(x_simple) and x.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from components.blocks.diffusion.loss import ddpm_loss

__all__ = ["ddpm_loss", "init_loss"]


def init_loss(net: Callable[[torch.Tensor], torch.Tensor], x_simple: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """|| x_simple + f(x_simple) - x ||^2 (mean); ``(B, 1, H, W)`` each."""
    return F.mse_loss(x_simple + net(x_simple), x)
