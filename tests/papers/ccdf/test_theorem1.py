"""Theorem 1 of the paper (stochastic contraction), tested directly on a case with a known answer.

With data x ~ N(0, s2 I) the exact eps-predictor is linear, so every ancestral reverse step
x_t -> x_t' (Ho et al. Eqs. 6-7, ``ddpm_step``) is the affine map c_i x_t + (noise), with

    x0_hat = k(a) x_t,  k(a) = sqrt(a) s2 / (a s2 + 1 - a),  beta = 1 - a / a',
    c_i = sqrt(a') beta / (1 - a) k(a) + sqrt(1 - beta) (1 - a') / (1 - a)   (< 1 for s2 < 1).

Data consistency is an orthogonal projection (non-expansive). Two CCDF runs that share the sampler
noise (the synchronous coupling of the proof) and start from x and from x + eps0 therefore differ
at the end by at most  prod_i c_i * sqrt(abar_{N'}) ||eps0||  (equality without data consistency
and clipping): the error contracts geometrically in N', as Theorem 1 states
(E||x_hat_0 - x_0||^2 <= lambda^{2N'} E||x_{N'} - x~_{N'}||^2 + the noise term 2 C tau / (1 - lambda^2)).
"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from components.blocks.diffusion.schedule import alphas_cumprod, respaced_timesteps
from components.blocks.physics.operators import Downsample, Masking
from components.papers.ccdf.solver import ccdf, n_prime

torch.set_num_threads(1)
ABAR = alphas_cumprod()
S2 = 0.02  # prior variance (in [-1, 1] units): x0_hat stays inside [-1, 1], clipping is inactive
STEPS = 100
SEEDS = 16


def gaussian_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    a = ABAR[t.long()].to(x.dtype).view(-1, 1, 1, 1)
    return (1 - a).sqrt() * x / (a * S2 + 1 - a)


def contraction_bound(n: int) -> float:
    """prod_i c_i * sqrt(abar_{N'}): the factor by which a start error eps0 can survive N' steps."""
    ts = respaced_timesteps(STEPS, ABAR.shape[0])[-n:]
    factor = 1.0
    for i, t in enumerate(ts):
        a = float(ABAR[t])
        ap = float(ABAR[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        beta = 1 - a / ap
        k = math.sqrt(a) * S2 / (a * S2 + 1 - a)
        factor *= math.sqrt(ap) * beta / (1 - a) * k + math.sqrt(1 - beta) * (1 - ap) / (1 - a)
    return factor * math.sqrt(float(ABAR[ts[0]]))


def runs(x0_hat: torch.Tensor, op, y: torch.Tensor, t0: float) -> torch.Tensor:
    """CCDF from ``x0_hat`` ``(1, 1, H, W)`` as a batch of SEEDS independent sampler draws; the same
    generator seed in every call, so run b of one call and run b of another share their noise."""

    def rep(z: torch.Tensor) -> torch.Tensor:
        return z.expand(SEEDS, *z.shape[1:])

    return ccdf(
        gaussian_eps, rep(x0_hat), op, rep(y), ABAR, steps=STEPS, t0=t0, generator=torch.Generator().manual_seed(7)
    )[0]


@pytest.fixture(scope="module")
def truth_and_error() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 16, 16, generator=g) * math.sqrt(S2)  # a sample of the prior
    eps0 = torch.randn(1, 1, 16, 16, generator=g)
    return x, 0.15 * eps0 / eps0.pow(2).mean().sqrt()  # ||eps0||_rms = 0.15


T0S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)


@pytest.mark.parametrize("with_dc", [False, True])
def test_coupled_error_contracts_as_the_bound(truth_and_error, with_dc: bool) -> None:
    x, eps0 = truth_and_error
    op = Downsample(4) if with_dc else Masking(torch.zeros(1, 1, 16, 16))  # zero mask: no data consistency
    y = op.A(x)

    def rms(z: torch.Tensor) -> torch.Tensor:
        return z.pow(2).flatten(1).mean(1).sqrt()

    measured, bounds = [], []
    for t0 in T0S:
        d = rms(runs(x + eps0, op, y, t0) - runs(x, op, y, t0))  # (SEEDS,) coupled distances
        b = contraction_bound(n_prime(t0, STEPS)) * float(rms(eps0))
        assert float(d.max()) <= b * (1 + 1e-4) + 1e-6, (
            f"t0={t0}: coupled distance {float(d.max()):.4g} over the bound {b:.4g}"
        )
        if not with_dc:  # a linear map: the bound is attained
            assert torch.allclose(d, torch.full_like(d, b), rtol=1e-3)
        measured.append(float(d.mean()))
        bounds.append(b)
    # geometric contraction: the surviving error falls monotonically and by orders of magnitude over N'
    assert all(b1 > b2 for b1, b2 in pairwise(bounds)) and bounds[-1] < 2e-2 * bounds[0]
    assert all(m1 >= m2 for m1, m2 in pairwise(measured))
    if with_dc:  # the projection removes the measured (low-pass) part of the error on top of the contraction
        assert measured[0] < bounds[0]


def test_final_error_follows_theorem_1(truth_and_error) -> None:
    """E||x_hat - x||^2 over sampler seeds: bounded by (noise term + contracted start error)^2, where the
    noise term is the error of the run started exactly at the truth (eps0 = 0), for every N'."""
    x, eps0 = truth_and_error
    op = Downsample(4)
    y = op.A(x)

    def mse(z: torch.Tensor) -> torch.Tensor:
        return z.pow(2).flatten(1).mean(1)

    errs, floors = [], []
    for t0 in T0S:
        e = mse(runs(x + eps0, op, y, t0) - x).mean()
        floor = mse(runs(x, op, y, t0) - x).mean()
        contracted = contraction_bound(n_prime(t0, STEPS)) * float(eps0.pow(2).mean().sqrt())
        assert float(e) <= (float(floor).__pow__(0.5) + contracted) ** 2 * (1 + 1e-4)
        errs.append(float(e))
        floors.append(float(floor))
    # a small N' keeps most of eps0 (beyond its measured part); a large N' forgets it down to the floor
    assert errs[0] > 3 * floors[0]
    assert abs(errs[-1] - floors[-1]) < 0.05 * floors[-1]
