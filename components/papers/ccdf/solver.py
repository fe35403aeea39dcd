"""CCDF, Algorithm 1 of the paper, and the from-noise baselines, on the shared samplers.

Notation (paper -> code):

==================  ==============================  =============================================
paper               code                            meaning
==================  ==============================  =============================================
N                   ``steps``                       discretisation of the reverse process of [0, 1]
t0, N' = t0 N       ``t0``, ``n_prime``             where CCDF starts; the reverse steps it runs
x0_hat (x~_0)       ``x0_hat``                      initial estimate (simple or network)
x_{N'}              ``x_start``                     x0_hat forward-diffused once (Eq. 8 / Ho Eq. 4)
f, g (Eq. 3)        ``ddpm_step``                   the ancestral reverse step of the score model
A x + b  (Eq. 4)    ``data_consistency``            non-expansive map onto the measurement set
==================  ==============================  =============================================

Algorithm 1: x_{N'} = sqrt(abar_{N'}) x0_hat + sqrt(1 - abar_{N'}) z; for i = N' .. 1:
x_{i-1} = f(x_i, i) + g(x_i) z_i, then x_{i-1} <- data consistency. Theorem 1: the error to the
truth contracts geometrically over the reverse steps, so starting closer (a better x0_hat) lets
a smaller t0 (fewer steps) reach the same accuracy.

Data consistency follows ILVR (Choi et al. 2021, jychoi118/ilvr_adm) and score-SDE replacement (the
paper's Sec. 4 choice for SR and inpainting):
the measurement is diffused to the level of the current iterate, y_t = sqrt(abar) y +
sqrt(1 - abar) A z, and x <- x + A^+(y_t - A x) (components.blocks.physics.operators.project),
which at the last step (abar = 1) is exact consistency with y.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from components.blocks.diffusion.loss import EpsModel
from components.blocks.diffusion.samplers import DataConsistency, sample
from components.blocks.diffusion.schedule import q_sample, respaced_timesteps
from components.blocks.physics.operators import project


def n_prime(t0: float, steps: int) -> int:
    """N' = t0 N (rounded, at least 1)."""
    return max(1, min(steps, round(t0 * steps)))


def data_consistency(op, y: torch.Tensor, generator: torch.Generator | None) -> DataConsistency:
    """The map applied after each reverse step: projection onto {x : A x = y_t}, y_t diffused to abar."""

    def dc(x: torch.Tensor, abar_prev: float) -> torch.Tensor:
        if abar_prev >= 1.0:
            return project(x, y, op)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        y_t = abar_prev**0.5 * y + (1 - abar_prev) ** 0.5 * op.A(z)
        return project(x, y_t, op)

    return dc


def ccdf(
    eps_model: EpsModel,
    x0_hat: torch.Tensor,
    op,
    y: torch.Tensor,
    abar: torch.Tensor,
    *,
    steps: int,
    t0: float,
    generator: torch.Generator | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, int]:
    """Come-closer-diffuse-faster: forward-diffuse ``x0_hat`` to t0, then N' reverse steps with DC.

    Args:
        eps_model: eps_theta(x_t, t).
        x0_hat: ``(B, C, H, W)`` initial estimate in [-1, 1].
        op, y: the forward operator and the measurement y = A x.
        abar: ``(T,)`` alpha_bar.
        steps: N; t0: the starting time, N' = t0 N.
        should_stop: a caller's time budget, polled before every network evaluation; once it
            returns True the solver raises ``TimeoutError`` instead of finishing.

    Returns:
        ``(x0, nfe)`` with nfe = N'.
    """
    eps_model = _stoppable(eps_model, should_stop)
    timesteps = respaced_timesteps(steps, abar.shape[0])[-n_prime(t0, steps) :]
    z = torch.randn(x0_hat.shape, generator=generator, dtype=x0_hat.dtype).to(x0_hat.device)
    x_start = q_sample(x0_hat, torch.tensor(timesteps[0]), z, abar)
    return sample(
        eps_model, x_start, timesteps, abar, data_consistency=data_consistency(op, y, generator), generator=generator
    )


def _stoppable(eps_model: EpsModel, should_stop: Callable[[], bool] | None) -> EpsModel:
    """``eps_model`` that raises ``TimeoutError`` once ``should_stop()`` (one check per NFE)."""
    if should_stop is None:
        return eps_model
    calls = [0]

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if should_stop():
            raise TimeoutError(f"CCDF stopped after {calls[0]} network evaluations")
        calls[0] += 1
        return eps_model(x, t)

    return eps


def from_noise(
    eps_model: EpsModel,
    shape: tuple[int, ...],
    op,
    y: torch.Tensor,
    abar: torch.Tensor,
    *,
    steps: int,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, int]:
    """The baseline: reverse diffusion from pure noise (t = 1) over ``steps`` steps, same DC map
    (ILVR for SR, score-SDE replacement for inpainting and MRI)."""
    x_start = torch.randn(shape, generator=generator).to(device or y.device)
    timesteps = respaced_timesteps(steps, abar.shape[0])
    return sample(
        eps_model, x_start, timesteps, abar, data_consistency=data_consistency(op, y, generator), generator=generator
    )
