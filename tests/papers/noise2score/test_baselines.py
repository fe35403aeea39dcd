"""The classical anchors: the oracle Gaussian filter and BM3D with its variance-stabilising transforms."""

from __future__ import annotations

import pytest
import torch

from components.blocks.metrics.image import psnr
from components.papers.noise2score.baselines import FILTER_WIDTHS, best_gaussian_filter, bm3d_denoise
from components.papers.noise2score.noise import add_noise, clip_quantize, is_grey


def test_oracle_filter_on_a_flat_image_takes_the_widest_width() -> None:
    x = torch.full((1, 3, 32, 32), 0.5)
    y = add_noise(x, "gaussian", 25.0, torch.Generator().manual_seed(0))
    out, width = best_gaussian_filter(y, x)
    assert width == FILTER_WIDTHS[-1] and psnr(out, x) > psnr(y, x) + 10


@pytest.mark.parametrize(("family", "level"), [("gaussian", 25.0), ("poisson", 0.05), ("gamma", 50.0)])
def test_bm3d_with_the_true_level_denoises_every_family(family: str, level: float) -> None:
    # A smooth grey ramp: a wrong variance-stabilising inverse (bias) would cost far more than it gains.
    ramp = torch.linspace(0.2, 0.8, 40)
    x = (ramp[None, :] * 0.5 + ramp[:, None] * 0.5).expand(1, 3, 40, 40).contiguous()
    y = clip_quantize(add_noise(x, family, level, torch.Generator().manual_seed(1)))
    y = y[:, :1].expand_as(y).contiguous()  # same noise on the three channels: a grey picture
    assert is_grey(y)
    out = bm3d_denoise(y, family, level)
    assert out.shape == y.shape
    assert psnr(out.clamp(0, 1), x) > psnr(y, x) + 6, (psnr(out.clamp(0, 1), x), psnr(y, x))
    assert abs(float(out.mean() - x.mean())) < 0.01  # no bias left by the inverse transform
