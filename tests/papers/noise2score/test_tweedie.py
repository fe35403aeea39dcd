"""Tweedie denoisers against posterior means computed in closed form for conjugate priors."""

from __future__ import annotations

import math

import pytest
import torch

from components.papers.noise2score import tweedie


def test_gaussian_equals_posterior_mean() -> None:
    # x ~ N(m, t^2), y = x + sigma n  =>  p(y) = N(m, t^2 + sigma^2), E[x|y] = m + t^2 (y - m) / (t^2 + sigma^2)
    m, t, sigma = 0.4, 0.2, 0.1
    y = torch.linspace(-0.5, 1.5, 101, dtype=torch.float64)
    score = -(y - m) / (t**2 + sigma**2)
    exact = m + t**2 * (y - m) / (t**2 + sigma**2)
    assert torch.allclose(tweedie.gaussian(y, score, sigma), exact, atol=1e-12)
    assert torch.allclose(tweedie.denoise(y, score, "gaussian", sigma * 255), exact, atol=1e-12)


def test_gamma_equals_inverse_posterior_mean_of_rate() -> None:
    # y = x G, G ~ Gamma(k, 1/k); rate lam = 1/x ~ Gamma(alpha, beta).  p(y) ~ y^(k-1) (beta + k y)^-(k + alpha),
    # lam | y ~ Gamma(alpha + k, beta + k y): Tweedie's formula on the natural parameter gives 1 / E[lam | y].
    k, alpha, beta = 50.0, 3.0, 1.5
    y = torch.linspace(0.05, 2.0, 50, dtype=torch.float64)
    score = (k - 1) / y - k * (k + alpha) / (beta + k * y)
    exact = (beta + k * y) / (alpha + k)
    assert torch.allclose(tweedie.gamma(y, score, k), exact, rtol=1e-10)


def test_poisson_close_to_posterior_mean_at_high_counts() -> None:
    # y = zeta K, K ~ Poisson(lam), lam = x / zeta ~ Gamma(alpha, beta): K is negative binomial and
    # E[x | y] = zeta (alpha + K) / (beta + 1). Noise2Score's formula is a continuous approximation,
    # so compare where counts are large (relative error O(zeta / y)).
    zeta, alpha, beta = 0.01, 400.0, 4.0
    counts = torch.arange(60.0, 140.0, dtype=torch.float64)
    y = zeta * counts

    def log_p(c: torch.Tensor) -> torch.Tensor:
        return (
            torch.lgamma(c + alpha)
            - torch.lgamma(c + 1)
            - math.lgamma(alpha)
            + alpha * math.log(beta / (beta + 1))
            - c * math.log(beta + 1)
        )

    c = counts.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_p(c).sum(), c)
    score = grad / zeta  # d/dy log p with y = zeta * count
    exact = zeta * (alpha + counts) / (beta + 1)
    rel = ((tweedie.poisson(y, score, zeta) - exact) / exact).abs()
    assert rel.max() < 0.01, rel.max()


def test_general_form_reduces_to_closed_forms() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1000, generator=g, dtype=torch.float64) + 0.2
    s = torch.randn(1000, generator=g, dtype=torch.float64)
    assert torch.allclose(tweedie.tweedie_general(y, s, 0.0, 0.01), tweedie.gaussian(y, s, 0.1), atol=1e-12)
    assert torch.allclose(tweedie.tweedie_general(y, s, 2.0, 1 / 80), tweedie.gamma(y, s, 80.0), rtol=1e-9)
    # p = 1: y exp(zeta (s + 1/(2y))) agrees with (y + zeta/2) exp(zeta s) to first order in zeta
    zeta = 1e-3
    diff = tweedie.tweedie_general(y, s, 1.0, zeta) - tweedie.poisson(y, s, zeta)
    assert diff.abs().max() < 10 * zeta**2 / y.min()


@pytest.mark.parametrize(("family", "level"), [("gaussian", 25.0), ("poisson", 0.02), ("gamma", 60.0)])
def test_likelihood_score_is_inverted_by_tweedie(family: str, level: float) -> None:
    # The score network is written as likelihood_score(y, D(y)) (model.py): Tweedie's formula must give D back.
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 0.9 + 0.05
    d = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 0.9 + 0.05
    s = tweedie.likelihood_score(y, d, family, level)
    assert torch.allclose(tweedie.denoise(y, s, family, level), d, rtol=1e-10)
    # per-sample levels broadcast the same way
    levels = torch.tensor([level, 2 * level], dtype=torch.float64).view(2, 1, 1, 1)
    s2 = tweedie.likelihood_score(y, d, family, levels)
    assert torch.allclose(tweedie.denoise(y, s2, family, levels), d, rtol=1e-10)
    assert torch.allclose(s2[0], s[0])


def test_likelihood_score_is_the_noise_models_score() -> None:
    # d/dy log p(y | x): Gaussian (x - y) / sigma^2; Gamma (k - 1) / y - k / x, by autograd of the log densities
    x = torch.tensor([0.3, 0.6], dtype=torch.float64)
    y = torch.tensor([0.35, 0.5], dtype=torch.float64, requires_grad=True)
    sigma, k = 0.1, 50.0
    log_n = torch.distributions.Normal(x, sigma).log_prob(y).sum()
    log_g = torch.distributions.Gamma(k, k / x).log_prob(y).sum()
    (dn,) = torch.autograd.grad(log_n, y)
    (dg,) = torch.autograd.grad(log_g, y)
    assert torch.allclose(tweedie.likelihood_score(y.detach(), x, "gaussian", sigma * 255), dn)
    assert torch.allclose(tweedie.likelihood_score(y.detach(), x, "gamma", k), dg)
