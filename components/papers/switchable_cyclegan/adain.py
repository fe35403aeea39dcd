"""The AdaIN switch: one normalisation layer whose style code turns one direction into the other.

Paper (and official networks/adain.py, ``one_conv_adain`` / ``adain_code_generator_*``)::

    h      = IN(conv x)                                  (instance norm, no affine)
    x_out  = alpha * (sigma * h + mu) + (1 - alpha) * h  (alpha = 0: plain IN; alpha = 1: AdaIN)

with ``(mu, sigma)`` per channel from a *shared* MLP on a constant vector (four Linear layers
128 -> 64, no activations, as in ``adain_code_generator_shared``) followed by one Linear head per
layer for mu and one for sigma (ReLU'd, ``adain_code_generator_seperate``). This affine form is the
current official one (adain.py after commit 930c911, ``x_out = sigma_y * (x_in) + mean_y``); the
first upload (1c529cc) re-standardised h by its own unbiased std first, a factor sqrt((n-1)/n) apart
since h is already instance-normalised.
"""

from __future__ import annotations

import torch
from torch import nn

CODE_INPUT = 128  # adain.py: torch.ones((batch, 128))


class SharedCode(nn.Module):
    """The shared MLP on a constant ones vector: ``() -> (1, code_dim)``."""

    def __init__(self, code_dim: int) -> None:
        super().__init__()
        dims = [CODE_INPUT, code_dim, code_dim, code_dim, code_dim]
        self.layers = nn.Sequential(*[nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:], strict=True)])

    def forward(self) -> torch.Tensor:
        first = self.layers[0]
        assert isinstance(first, nn.Linear)
        w = first.weight
        return self.layers(torch.ones(1, CODE_INPUT, device=w.device, dtype=w.dtype))


def _alpha(alpha: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor | float:
    """A float, or a per-sample ``(B,)`` tensor broadcast to ``(B, 1, 1, 1)``."""
    if isinstance(alpha, torch.Tensor):
        return alpha.to(like).reshape(-1, 1, 1, 1)
    return float(alpha)


class SwitchableNorm(nn.Module):
    """Instance norm with the alpha-blended AdaIN of the paper (``heads=False``: plain IN).

    Shapes: ``x (B, C, H, W)``, ``code (1, code_dim)`` -> ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, code_dim: int, heads: bool = True) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.fc_mean = nn.Linear(code_dim, channels) if heads else None
        self.fc_sigma = nn.Linear(code_dim, channels) if heads else None

    def style(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, sigma)``, each ``(1, C, 1, 1)``; sigma >= 0 (ReLU, as in adain.py)."""
        assert self.fc_mean is not None and self.fc_sigma is not None, "style needs heads=True"
        mu = self.fc_mean(code)[..., None, None]
        sigma = torch.relu(self.fc_sigma(code))[..., None, None]
        return mu, sigma

    def forward(self, x: torch.Tensor, code: torch.Tensor | None, alpha: float | torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        if self.fc_mean is None or code is None:
            return h
        mu, sigma = self.style(code)
        a = _alpha(alpha, h)
        return a * (sigma * h + mu) + (1 - a) * h
