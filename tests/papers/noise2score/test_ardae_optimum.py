"""The AR-DAE loss's exact optimum under the sigma_a draw the code uses (losses.py), Gaussian data.

For y ~ N(m, v) the optimum is known in closed form (``ardae_optimum_gaussian``); a Monte Carlo
minimiser of the loss itself, per bin of z = y + sigma_a u, with sigma_a drawn by ``draw_sigma_a``,
must agree with it. Under the CVPR'22 log grid [1e-3, 0.1] the optimum is the score smoothed by
an extra variance of about (sigma_max^2 + sigma_min^2) / 2 (visibly not the score of y); after
the official annealing it is the score of y up to sigma_min^2.
"""

from __future__ import annotations

import torch

from components.papers.noise2score.losses import annealed_sigma, ardae_optimum_gaussian, draw_sigma_a, sigma_grid

M, V = 0.5, 0.01  # y ~ N(0.5, 0.1^2): a Gaussian prior plus Gaussian noise


def _monte_carlo(schedule: str, step: int, n: int = 200_000, bins: int = 16):
    g = torch.Generator().manual_seed(0)
    y = M + V**0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    sa = draw_sigma_a(schedule, step, 100, 1e-3, 0.1, 22_000, n, g)
    u = torch.randn(n, generator=g, dtype=torch.float64)
    z = y + sa * u
    edges = torch.linspace(M - 2 * V**0.5, M + 2 * V**0.5, bins + 1, dtype=torch.float64)
    return z, sa, u, edges


def _optimum(schedule: str, step: int, z: torch.Tensor) -> torch.Tensor:
    if schedule == "grid":
        grid = sigma_grid(1e-3, 0.1, 22_000)[50::100]  # 220 equally weighted quadrature nodes of the 22000
        assert abs(grid.log().mean() - sigma_grid(1e-3, 0.1, 22_000).log().mean()) < 1e-3
        return ardae_optimum_gaussian(z, M, V, grid, torch.full_like(grid, 1 / len(grid)))
    s = torch.tensor([annealed_sigma(step, 100, 1e-3, 0.1)], dtype=torch.float64)
    return ardae_optimum_gaussian(z, M, V, s, torch.ones(1, dtype=torch.float64))


def test_monte_carlo_minimiser_of_the_loss_matches_the_exact_optimum_and_shows_the_smoothing() -> None:
    z, sa, u, edges = _monte_carlo("grid", 0)
    opt = _optimum("grid", 0, z)
    far = 0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (z >= lo) & (z < hi)
        w = (sa[sel] ** 2).sum()
        mc = -(sa[sel] * u[sel]).sum() / w  # argmin_s sum (sigma_a s + u)^2 over the bin
        pred = (sa[sel] ** 2 * opt[sel]).sum() / w
        resid = sa[sel] * u[sel] + sa[sel] ** 2 * opt[sel]  # zero mean given z
        se = resid.pow(2).sum().sqrt() / w
        assert abs(mc - pred) < 4 * se, (float(lo), float(mc), float(pred), float(se))
        raw = (sa[sel] ** 2 * (-(z[sel] - M) / V)).sum() / w  # the unsmoothed score of y
        far += int(abs(mc - raw) > 6 * se)
    assert far >= 6  # the tails see the smoothing far beyond Monte Carlo noise


def test_extra_variance_of_the_grid_optimum() -> None:
    # Near the mean the optimum is -(z - m) / (v + e) with e ~ E[s^4] / E[s^2] = (b^2 + a^2) / 2 (log-uniform).
    z = torch.tensor([M - 1e-4, M + 1e-4], dtype=torch.float64)
    opt = _optimum("grid", 0, z)
    eff_var = float(-(z[1] - z[0]) / (opt[1] - opt[0]))
    a, b = 1e-3, 0.1
    assert abs((eff_var - V) / ((a**2 + b**2) / 2) - 1) < 0.25, eff_var
    assert eff_var > 1.3 * V  # a 30 % inflated variance: what flattened the power estimate


def test_annealed_schedule_ends_on_the_score_of_y() -> None:
    assert annealed_sigma(0, 100, 1e-3, 0.1) > 0.09 and annealed_sigma(99, 100, 1e-3, 0.1) == 1e-3
    assert annealed_sigma(10_000, 100, 1e-3, 0.1) == 1e-3
    z, sa, u, _ = _monte_carlo("anneal", 500)
    assert (sa == 1e-3).all()
    opt = _optimum("anneal", 500, z)
    raw = -(z - M) / V
    assert torch.allclose(opt, raw * V / (V + 1e-6), rtol=1e-9)  # smoothed by sigma_min^2 only
    assert ((opt - raw).abs() / raw.abs().clamp_min(1e-9)).max() < 2e-4


def test_antithetic_estimate_has_the_same_mean_and_far_less_gradient_noise() -> None:
    from components.papers.noise2score.losses import ardae_loss

    g = torch.Generator().manual_seed(1)
    y = M + V**0.5 * torch.randn(64, 1, 4, 4, generator=g, dtype=torch.float64)
    sa = torch.full((64,), 1e-3, dtype=torch.float64)
    w = torch.tensor(-50.0, dtype=torch.float64, requires_grad=True)  # s(z) = w (z - M), optimum -1/V = -100
    draws = {}
    for anti in (False, True):
        losses, grads = [], []
        for _ in range(200):
            loss = ardae_loss(lambda z: w * (z - M), y, sa, g, antithetic=anti)
            (gw,) = torch.autograd.grad(loss, w)
            losses.append(float(loss))
            grads.append(float(gw))
        draws[anti] = (torch.tensor(losses), torch.tensor(grads))
    (l0, g0), (l1, g1) = draws[False], draws[True]
    assert abs(l0.mean() - l1.mean()) < 4 * (l0.std() / 200**0.5 + l1.std() / 200**0.5)
    assert g1.mean() > 5 * g1.std() / 200**0.5  # descent lowers w towards the optimum -100 ...
    assert g1.std() < 0.05 * g0.std()  # ... with a gradient whose noise the one-sided estimate drowns
