"""Noise samplers match their moments; the AR-DAE loss trains a score network."""

from __future__ import annotations

import torch

from components.blocks.nn.unet import N2NUNet
from components.papers.noise2score.losses import ardae_loss, sigma_grid
from components.papers.noise2score.noise import add_noise, clip_quantize, noise_std, sample_level


def test_noise_moments() -> None:
    x = torch.full((200_000,), 0.5, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    gau = add_noise(x, "gaussian", 25.0, g)
    assert abs(gau.mean() - 0.5) < 1e-3 and abs(gau.std() - 25 / 255) < 1e-3
    poi = add_noise(x, "poisson", 0.01, g)  # mean x, variance zeta * x
    assert abs(poi.mean() - 0.5) < 1e-3 and abs(poi.var() - 0.005) < 2e-4
    gam = add_noise(x, "gamma", 50.0, g)  # mean x, variance x^2 / k
    assert abs(gam.mean() - 0.5) < 1e-3 and abs(gam.var() - 0.25 / 50) < 2e-4
    small = add_noise(x, "gamma", 0.5, g)  # shape < 1 goes through the boost
    assert abs(small.mean() - 0.5) < 0.01


def test_noise_is_reproducible_from_the_generator() -> None:
    x = torch.rand(4, 3, 8, 8)
    for family, level in (("gaussian", 30.0), ("poisson", 0.02), ("gamma", 60.0)):
        a = add_noise(x, family, level, torch.Generator().manual_seed(5))
        b = add_noise(x, family, level, torch.Generator().manual_seed(5))
        assert torch.equal(a, b)


def test_levels_are_log_uniform_in_range() -> None:
    g = torch.Generator().manual_seed(0)
    draws = torch.tensor([sample_level(20.0, 55.0, g) for _ in range(4000)])
    assert draws.min() >= 20 and draws.max() <= 55
    logs = draws.log()
    assert abs(logs.mean() - (torch.tensor(20.0).log() + torch.tensor(55.0).log()) / 2) < 0.01


def test_sigma_grid_matches_official() -> None:
    grid = sigma_grid(1e-3, 0.1, 22_000)
    assert len(grid) == 22_000 and abs(grid[0] - 0.1) < 1e-12 and abs(grid[-1] - 1e-3) < 1e-12


def test_clip_quantize_and_noise_std() -> None:
    y = torch.tensor([-0.2, 0.0, 0.5, 0.50001, 1.3])
    q = clip_quantize(y)
    assert q.min() == 0 and q.max() == 1 and torch.allclose(q * 255, torch.round(q * 255))
    x = torch.full((10,), 0.25)
    assert abs(noise_std(x, "gaussian", 25.0) - 25 / 255) < 1e-12
    assert abs(noise_std(x, "poisson", 0.04) - (0.04 * 0.25) ** 0.5) < 1e-12
    assert abs(noise_std(x, "gamma", 100.0) - 0.25 / 10) < 1e-12


def test_ardae_loss_falls() -> None:
    torch.manual_seed(0)
    net = N2NUNet(3, 3, width=8, depth=2)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(1)
    # Noisy images that are all one grey level: the score of y_bar = 0.5 + sigma_a u is known,
    # -(y_bar - 0.5) / sigma_a^2, and the loss can fall to 0 when the network learns it.
    y = torch.full((8, 3, 16, 16), 0.5)
    sigmas = torch.full((8,), 0.1)
    first = [ardae_loss(net, y, sigmas, g).item() for _ in range(5)]
    for _ in range(150):
        loss = ardae_loss(net, y, sigmas, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = [ardae_loss(net, y, sigmas, g).item() for _ in range(5)]
    assert sum(last) < 0.75 * sum(first), (first, last)


def test_ema_warmup_follows_official_formula() -> None:
    # models/ema.py: decay_t = min(decay, (1 + t) / (10 + t)); at t = 1 the EMA moves 9/11 of the way.
    from torch import nn

    from components.blocks.training.phase import ema_update as _ema_update

    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = {"weight": torch.zeros(1, 1)}
    _ema_update(ema, net, 0.999, updates=1)
    assert torch.allclose(ema["weight"], torch.tensor([[1 - 2 / 11]]))
    ema = {"weight": torch.zeros(1, 1)}
    _ema_update(ema, net, 0.999, updates=10**6)  # warm-up over: the plain decay
    assert torch.allclose(ema["weight"], torch.tensor([[0.001]]), atol=1e-6)


def test_grey_pictures_are_probed_in_grey() -> None:
    # A grey picture is a one-channel image: its AR-DAE probe u must not leave the grey subspace.
    seen = []

    def record(z: torch.Tensor) -> torch.Tensor:
        seen.append(z)
        return torch.zeros_like(z)

    y = torch.rand(2, 3, 8, 8)
    y[1] = y[1, :1]
    ardae_loss(record, y, torch.full((2,), 0.1), torch.Generator().manual_seed(0), True, torch.tensor([False, True]))
    u = (seen[0] - torch.cat([y, y])) / 0.1  # antithetic: (u, -u) for both samples
    assert torch.allclose(u[1], u[1, :1].expand_as(u[1])) and torch.allclose(u[3], -u[1])
    assert not torch.allclose(u[0], u[0, :1].expand_as(u[0]))


def test_zoomed_crops_are_magnified_and_zoom_one_is_unchanged() -> None:
    from components.papers.noise2score.data import sample_batch

    # an image of one-pixel stripes: a crop magnified by f has stripes f px wide, so less energy in
    # the differences of neighbouring pixels
    img = ((torch.arange(128) % 2) * 255).to(torch.uint8)[None, :, None].expand(128, 128, 3).contiguous()
    plain = sample_batch([img], 32, 16, 0.0, torch.Generator().manual_seed(0))
    zoomed = sample_batch([img], 32, 16, 0.0, torch.Generator().manual_seed(0), zoom=4.0)
    assert plain.shape == zoomed.shape == (16, 3, 32, 32)
    assert 0 <= float(zoomed.min()) and float(zoomed.max()) <= 1
    step = lambda x: float((x.diff(dim=-1) ** 2).mean() + (x.diff(dim=-2) ** 2).mean())  # noqa: E731
    assert step(zoomed) < 0.5 * step(plain)
    again = sample_batch([img], 32, 16, 0.0, torch.Generator().manual_seed(0), zoom=1.0)
    assert torch.equal(plain, again)
