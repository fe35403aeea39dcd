"""Blind family estimation from the Tweedie variance function of the residual (variance.py), on known answers."""

from __future__ import annotations

import math

import pytest
import torch

from components.papers.noise2score.model import gaussian_blur
from components.papers.noise2score.noise import EVAL_SETTINGS, FAMILIES, add_noise
from components.papers.noise2score.variance import (
    estimate_noise_model,
    fit_noise_model,
    residual_gain,
    variance_bins,
)

RANGES = {"gaussian": (10.0, 55.0), "poisson": (0.005, 0.1), "gamma": (40.0, 120.0)}
# Intensities 0.05 .. 0.95 along the rows: the families differ in how the variance follows them.
RAMP = torch.linspace(0.05, 0.95, 96, dtype=torch.float64)
X = RAMP[None, :].expand(96, 96).expand(1, 3, 96, 96).contiguous()


def test_residual_gain_of_a_blur_is_its_closed_form() -> None:
    # For a linear D = K y, ||row_i(I - K)||^2 = 1 - 2 k_0 + sum k^2: with the separable 1-px kernel
    # k = g g^T, k_0 = g_0^2 and sum k^2 = (sum g^2)^2.
    t = torch.arange(-3, 4, dtype=torch.float64)
    g = torch.exp(-0.5 * t**2)
    g = g / g.sum()
    expected = float(1 - 2 * g[3] ** 2 + (g**2).sum() ** 2)
    y = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gain = residual_gain(lambda z: gaussian_blur(z, 1.0), y, probes=8)[..., 4:-4, 4:-4]
    assert abs(float(gain.mean()) - expected) < 0.01, (float(gain.mean()), expected)
    # an oracle that ignores y keeps all of the noise: the estimate is v^2 per pixel, mean 1
    assert abs(float(residual_gain(lambda z: X, X).mean()) - 1) < 0.05


@pytest.mark.parametrize(("family", "level"), EVAL_SETTINGS)
def test_oracle_residual_gives_the_true_family_and_level(family: str, level: float) -> None:
    y = add_noise(X, family, level, torch.Generator().manual_seed(3))
    fit = fit_noise_model(variance_bins(y, X, torch.ones_like(y)), list(FAMILIES))
    assert fit.family == family, fit.fits
    assert abs(math.log(fit.level / level)) < 0.25, (fit.level, level)
    # the alternation, told an oracle network (D = x whatever it is told), ends on the same answer
    told = estimate_noise_model(lambda z, f, lv: X.expand_as(z), y, RANGES)
    assert told.family == family, told.fits


def test_too_few_pixels_is_an_error() -> None:
    y = add_noise(X[..., :4, :4], "gaussian", 25.0, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="usable"):
        fit_noise_model(variance_bins(y, X[..., :4, :4], torch.ones_like(y)), list(FAMILIES))
