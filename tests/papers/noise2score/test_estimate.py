"""The blind estimator (AR-DAE loss of each candidate noise model) on scores with a known answer.

With the clean image known (an oracle D = x), the score model of family F at level lambda is the
likelihood score d/dy log p(y | x). Its matching loss J is the implicit score-matching objective,
minimised at the true level, and the true family explains the image best.
"""

from __future__ import annotations

import math

import pytest
import torch

from components.papers.noise2score import tweedie
from components.papers.noise2score.estimate import best_level, matching_losses, select_noise_model
from components.papers.noise2score.noise import EVAL_SETTINGS, add_noise

RANGES = {"gaussian": (10.0, 55.0), "poisson": (0.005, 0.1), "gamma": (40.0, 120.0)}
# A clean image spanning intensities 0.05 .. 0.95 (the families differ in how the variance follows x).
RAMP = torch.linspace(0.05, 0.95, 64, dtype=torch.float64)
X = (RAMP[None, :].expand(64, 64) + 0.0 * RAMP[:, None]).expand(1, 3, 64, 64).contiguous()


def oracle(x: torch.Tensor):
    """(y, family, levels) -> likelihood score at the clean image: the exact score given x."""

    def score(y: torch.Tensor, family: str, levels: torch.Tensor) -> torch.Tensor:
        lv = levels.to(y.dtype).view(-1, 1, 1, 1)
        return tweedie.likelihood_score(y, x.expand_as(y), family, lv)

    return score


def noisy(family: str, level: float, seed: int = 0) -> torch.Tensor:
    return add_noise(X, family, level, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("family", "level"), EVAL_SETTINGS)
def test_matching_loss_is_least_at_the_true_level(family: str, level: float) -> None:
    y = noisy(family, level)
    u = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    found, _ = best_level(oracle(X), y, family, RANGES[family], u, sigma_a=1e-3, grid=17)
    # Poisson zeta = 0.05 leaves 1 to 19 counts per pixel, where the continuous likelihood score
    # (y + zeta/2 in the log) is only approximate: its optimum sits about 25 % low there.
    tol = 0.35 if (family, level) == ("poisson", 0.05) else 0.1
    assert abs(math.log(found / level)) < tol, (family, level, found)


@pytest.mark.parametrize(("family", "level"), EVAL_SETTINGS)
def test_the_true_family_explains_the_image_best(family: str, level: float) -> None:
    y = noisy(family, level, seed=2)
    fam, lv, fits = select_noise_model(oracle(X), y, RANGES, sigma_a=1e-3, grid=9)
    assert fam == family, fits
    assert abs(math.log(lv / level)) < (0.35 if (family, level) == ("poisson", 0.05) else 0.2), (lv, level)


def test_common_probe_and_clipped_pixels() -> None:
    y = noisy("gaussian", 25.0)
    u = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    levels = torch.tensor([15.0, 25.0, 40.0], dtype=torch.float64)
    j = matching_losses(oracle(X), y, "gaussian", levels, u, 1e-3)
    # For the exact Gaussian score (x - z) / phi the antithetic J is, over the unclipped pixels,
    # mean((y - x)^2 + sigma_a^2 u^2) / phi^2 - 2 mean(u^2) / phi: least at phi = mean((y - x)^2), the truth.
    keep = (y > 0) & (y < 1)
    mse, uu = float(((y - X) ** 2)[keep].mean()), float((u**2)[keep].mean())
    phi = (levels / 255) ** 2
    assert torch.allclose(j, (mse + 1e-6 * uu) / phi**2 - 2 * uu / phi, rtol=1e-6)
    all_clipped = torch.ones_like(y)
    assert math.isnan(float(matching_losses(oracle(X), all_clipped, "gaussian", levels[:1], u, 1e-3)[0]))
    with pytest.raises(ValueError, match="clipped"):
        select_noise_model(oracle(X), all_clipped, RANGES)
