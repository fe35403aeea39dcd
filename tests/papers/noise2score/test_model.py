"""The conditioned score network: Tweedie of its score is its image estimate; it starts as a blur."""

from __future__ import annotations

import pytest
import torch

from components.papers.noise2score.model import ScoreNet, gaussian_blur, noise_std_map
from components.papers.noise2score.noise import corrupt, is_grey


def test_blur_keeps_constants_and_sums_to_one() -> None:
    flat = torch.full((1, 3, 20, 20), 0.3)
    assert torch.allclose(gaussian_blur(flat, 1.0), flat)
    impulse = torch.zeros(1, 1, 21, 21)
    impulse[..., 10, 10] = 1
    out = gaussian_blur(impulse, 1.0)
    assert abs(float(out.sum()) - 1) < 1e-5 and float(out[..., 10, 10]) < 0.2
    assert torch.equal(gaussian_blur(flat, 0.0), flat)


@pytest.mark.parametrize(("family", "level"), [("gaussian", 25.0), ("poisson", 0.02), ("gamma", 60.0)])
def test_tweedie_of_the_score_is_the_image_estimate(family: str, level: float) -> None:
    from components.papers.noise2score import tweedie

    torch.manual_seed(0)
    net = ScoreNet(["gaussian", "poisson", "gamma"], width=8, depth=2, bank=(0.0, 1.0, 2.0)).double()
    for p in net.parameters():  # a non-trivial network, not the zero-initialised one
        p.data.normal_(0, 0.05)
    y = torch.rand(2, 3, 12, 12, dtype=torch.float64) * 0.8 + 0.1
    levels = torch.tensor([level, 1.5 * level], dtype=torch.float64)
    d = net.denoised(y, family, levels)
    s = net.score(y, family, levels)
    assert torch.allclose(tweedie.denoise(y, s, family, levels.view(2, 1, 1, 1)), d.clamp_min(1e-3), rtol=1e-8)
    assert not torch.allclose(d, gaussian_blur(y, 1.0))


def test_starts_as_the_mean_blur_and_knows_its_families() -> None:
    net = ScoreNet(["gaussian", "gamma"], width=8, depth=2, bank=(0.0, 1.0, 3.0))
    y = torch.rand(1, 3, 13, 17)  # any size: padded for the U-Net and cropped back
    mean_blur = (y + gaussian_blur(y, 1.0) + gaussian_blur(y, 3.0)) / 3
    assert torch.allclose(net.denoised(y, "gaussian", 25.0), mean_blur, atol=1e-6)
    one = ScoreNet(["gaussian"], width=8, depth=2, bank=(1.0,))  # a bank of one: D = blur + correction
    assert torch.allclose(one.denoised(y, "gaussian", 25.0), gaussian_blur(y, 1.0), atol=1e-6)
    with pytest.raises(ValueError, match="no 'poisson'"):
        net.denoised(y, "poisson", 0.01)


def test_noise_std_map_follows_the_variance_function() -> None:
    b = torch.tensor([0.25, 1.0]).view(1, 1, 1, 2)
    lv = torch.tensor([4.0]).view(1, 1, 1, 1)
    assert torch.allclose(noise_std_map(b, "gaussian", lv * 255 / 100), torch.full_like(b, 0.04))
    assert torch.allclose(noise_std_map(b, "poisson", lv / 100), (0.04 * b).sqrt())
    assert torch.allclose(noise_std_map(b, "gamma", lv * 25), b / 10)


def test_grey_pictures_get_grey_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 8, generator=g)
    x[1] = x[1, :1]  # the second picture is grey
    y = corrupt(x, "gaussian", [25.0, 25.0], g)
    assert is_grey(y[1]) and not is_grey(y[0])
    with pytest.raises(ValueError, match="levels"):
        corrupt(x, "gaussian", [25.0], g)
