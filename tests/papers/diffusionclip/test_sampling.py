"""DDIM inversion and generation on DiffusionCLIP's sequences, against the exact score of Gaussian data;
the noise mixtures against the single models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.blocks.diffusion.samplers import sample
from components.blocks.diffusion.schedule import alphas_cumprod
from components.papers.diffusionclip.sampling import (
    forward_noise,
    generate,
    hybrid_eps,
    invert,
    ratio_eps,
    step_sequence,
    timesteps,
)

ABAR = alphas_cumprod()
MU, S = 0.3, 0.5  # data x0 ~ N(MU, S^2 I)


def exact_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The optimal eps-prediction for Gaussian data: x_t ~ N(sqrt(a) MU, (a S^2 + 1 - a) I), so
    E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) MU) / (a S^2 + 1 - a)."""
    a = ABAR[t].to(x.dtype).view(-1, 1, 1, 1)
    return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * S**2 + 1 - a)


def data(n: int = 6, seed: int = 0) -> torch.Tensor:
    return MU + S * torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_official_step_sequence() -> None:
    seq = step_sequence(500, 40)
    assert seq[:4] == [0, 12, 25, 38] and seq[-1] == 500 and len(seq) == 40
    assert seq == [int(s) for s in np.linspace(0, 1, 40) * 500]  # diffusionclip.py's seq_inv
    assert timesteps(500, 40) == seq[::-1]
    with pytest.raises(ValueError):
        step_sequence(0, 4)


def test_inversion_reconstructs_and_improves_with_steps() -> None:
    """With the exact score, inversion then generation returns the image (the ODE is invertible);
    the error is discretisation only, shrinking with n; stochastic forward noising does not return it."""
    x = data()
    errors = {}
    for n in (5, 20, 80):
        rec = generate(exact_eps, invert(exact_eps, x, 300, n, ABAR), 300, n, ABAR)
        errors[n] = float((rec - x).abs().mean())
    # first-order convergence: four times the steps, about a quarter of the error
    assert errors[5] / errors[20] > 3 and errors[20] / errors[80] > 3 and errors[80] < 0.01, errors
    small = generate(exact_eps, invert(exact_eps, x, 20, 10, ABAR), 20, 10, ABAR)
    assert float((small - x).abs().mean()) < 2e-3  # small t0: near exact (images have spread 0.5)
    stoch = generate(exact_eps, forward_noise(x, 300, ABAR, torch.Generator().manual_seed(1)), 300, 20, ABAR)
    assert float((stoch - x).abs().mean()) > 10 * errors[20]


def test_generate_matches_the_shared_ddim_sampler() -> None:
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ours = generate(exact_eps, x, 400, 12, ABAR)
    theirs, nfe = sample(exact_eps, x, timesteps(400, 12), ABAR, method="ddim", clip=False)
    assert nfe == 12 and torch.allclose(ours, theirs)


def test_generation_is_differentiable() -> None:
    w = torch.tensor(1.0, requires_grad=True)
    out = generate(lambda x, t: w * exact_eps(x, t), data(2).float(), 200, 3, ABAR)
    out.sum().backward()
    assert w.grad is not None and w.grad != 0


class Counting:
    def __init__(self, scale: float) -> None:
        self.scale, self.calls = scale, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.scale * exact_eps(x, t)


def test_model_ratio_zero_and_one_are_the_single_models() -> None:
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    orig, ft = Counting(1.0), Counting(0.7)
    single_orig = generate(orig, x, 300, 6, ABAR)
    single_ft = generate(ft, x, 300, 6, ABAR)
    orig.calls = ft.calls = 0
    assert torch.equal(generate(ratio_eps(orig, ft, 0.0), x, 300, 6, ABAR), single_orig) and ft.calls == 0
    assert torch.equal(generate(ratio_eps(orig, ft, 1.0), x, 300, 6, ABAR), single_ft) and orig.calls == 6
    t = torch.full((2,), 100)
    half = ratio_eps(orig, ft, 0.25)(x, t)
    assert torch.allclose(half, 0.25 * ft(x, t) + 0.75 * orig(x, t))


def test_hybrid_mixture_follows_the_time_thresholds() -> None:
    a, b = Counting(1.0), Counting(2.0)
    mix = hybrid_eps([a, b], [(300, (0.4, 0.6)), (0, (1.0, 3.0))])
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    for step, (ra, rb) in ((500, (0.4, 0.6)), (300, (0.4, 0.6)), (299, (0.25, 0.75)), (0, (0.25, 0.75))):
        t = torch.full((1,), step)
        assert torch.allclose(mix(x, t), ra * a(x, t) + rb * b(x, t))
    only_a = hybrid_eps([a, b], [(0, (1.0, 0.0))])
    b.calls = 0
    only_a(x, torch.zeros(1, dtype=torch.long))
    assert b.calls == 0  # a ratio of 0 does not evaluate the model
    with pytest.raises(ValueError):
        hybrid_eps([a], [(100, (1.0,))])(x, torch.zeros(1, dtype=torch.long))
