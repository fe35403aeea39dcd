"""CCDF's Algorithm 1 and the tasks: step counts, data consistency, 'come closer' helps."""

from __future__ import annotations

import pytest
import torch

from components.blocks.diffusion.schedule import alphas_cumprod
from components.papers.ccdf.config import TaskConfig
from components.papers.ccdf.losses import init_loss
from components.papers.ccdf.solver import ccdf, from_noise, n_prime
from components.papers.ccdf.tasks import TASKS, simple_init, simulate

torch.set_num_threads(1)
ABAR = alphas_cumprod()


def gaussian_eps(mean: torch.Tensor, sigma2: float):
    """The exact eps-predictor for data N(mean, sigma2 I) (a stand-in score model with a known answer)."""

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = ABAR[t.long()].to(x.dtype).view(-1, 1, 1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * mean) / (a * sigma2 + 1 - a)

    return fn


def truth_batch(n: int = 4, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, size, size, generator=g) * 1.6 - 0.8).clamp(-1, 1)


def test_n_prime() -> None:
    assert n_prime(0.2, 100) == 20 and n_prime(0.05, 100) == 5 and n_prime(0.001, 100) == 1 and n_prime(1.0, 50) == 50


@pytest.mark.parametrize("task", TASKS)
def test_simulation_and_simple_init(task: str) -> None:
    x = truth_batch()
    op, y = simulate(task, x, TaskConfig(), torch.Generator().manual_seed(1))
    x0 = simple_init(task, op, y)
    assert x0.shape == x.shape and x0.abs().max() <= 1
    assert torch.allclose(op.A(x), y)
    if task == "mri":
        assert abs(float(op.mask.mean()) - 0.25) < 0.05


@pytest.mark.parametrize("task", TASKS)
def test_ccdf_runs_n_prime_steps_and_ends_consistent(task: str) -> None:
    x = truth_batch()
    op, y = simulate(task, x, TaskConfig(), torch.Generator().manual_seed(1))
    eps = gaussian_eps(torch.zeros(()), 0.3)
    out, nfe = ccdf(
        eps, simple_init(task, op, y), op, y, ABAR, steps=100, t0=0.2, generator=torch.Generator().manual_seed(2)
    )
    assert nfe == 20 and out.shape == x.shape
    resid = (op.A(out) - y).abs().max()
    assert float(resid) < (1e-4 if task != "mri" else 0.2 * float(y.abs().max()))  # MRI: replacement + real part
    _, nfe_noise = from_noise(eps, tuple(x.shape), op, y, ABAR, steps=7, generator=torch.Generator().manual_seed(3))
    assert nfe_noise == 7


def test_coming_closer_beats_starting_from_noise() -> None:
    """Theorem 1's consequence with an exact score model of a broad prior N(0, 0.3 I): at the same
    N' = 5, CCDF from a close estimate ends nearer the truth than reverse diffusion from pure noise
    (which can only return a posterior sample), and a closer start ends closer."""
    x = truth_batch()
    op, y = simulate("sr", x, TaskConfig(), torch.Generator().manual_seed(1))
    eps = gaussian_eps(torch.zeros(()), 0.3)

    def err(z: torch.Tensor) -> float:
        return float((z - x).pow(2).mean())

    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    outs = [
        ccdf(eps, x + a * d, op, y, ABAR, steps=100, t0=0.05, generator=torch.Generator().manual_seed(5))[0]
        for a in (0.05, 0.3)
    ]
    out_noise, _ = from_noise(eps, tuple(x.shape), op, y, ABAR, steps=5, generator=torch.Generator().manual_seed(5))
    assert err(outs[0]) < err(outs[1]) < err(out_noise)


def test_init_loss_is_zero_for_a_perfect_residual() -> None:
    x, xs = truth_batch(), truth_batch() * 0.5
    assert float(init_loss(lambda z: x - z, xs, x)) == 0.0
    assert float(init_loss(lambda z: torch.zeros_like(z), xs, x)) > 0
