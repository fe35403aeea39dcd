"""Reverse-process samplers with the loop written out: ancestral (DDPM), DDIM, DDIM inversion.

Every sampler takes the eps-network, the starting state, the (descending) timesteps to visit and
an optional ``data_consistency(x, abar_prev) -> x`` map applied after every reverse step (what
inverse-problem solvers such as ILVR, score-SDE and CCDF add). The step math is written here so
the papers' equations are visible; tests/blocks/test_diffusion.py checks each step against
diffusers' ``DDPMScheduler.step`` / ``DDIMScheduler.step``.

Respaced steps (Nichol & Dhariwal 2021, Sec. 4): between visited steps t > t' the effective
beta is ``1 - abar_t / abar_t'``; the last step goes to abar = 1 (the clean image).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from components.blocks.diffusion.loss import EpsModel

DataConsistency = Callable[[torch.Tensor, float], torch.Tensor]
"""``dc(x (B, C, H, W), abar_prev) -> x``: a (non-expansive) map onto the measurement set."""


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, abar_t: float) -> torch.Tensor:
    """Tweedie / Ho et al. Eq. 15: x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    return (x_t - (1 - abar_t) ** 0.5 * eps) / abar_t**0.5


def ddpm_step(
    x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float, noise: torch.Tensor | None, clip: bool = True
) -> torch.Tensor:
    """One ancestral step x_t -> x_t' from the posterior q(x_t' | x_t, x0_hat) (Ho et al. Eqs. 6-7).

        beta = 1 - abar_t / abar_t'
        mean = sqrt(abar_t') beta / (1 - abar_t) x0_hat + sqrt(1 - beta) (1 - abar_t') / (1 - abar_t) x_t
        var  = beta (1 - abar_t') / (1 - abar_t)   ("fixed small", sigma_t^2 = beta~_t)

    ``clip``: x0_hat clamped to [-1, 1] (clip_denoised of the DDPM / guided-diffusion code, as in
    jychoi118/ilvr_adm's gaussian_diffusion.py).
    ``noise`` is z ~ N(0, I); ignored on the last step (abar_t' = 1).
    """
    beta = 1 - abar_t / abar_prev
    x0 = predict_x0(x_t, eps, abar_t)
    if clip:
        x0 = x0.clamp(-1, 1)
    mean = (abar_prev**0.5 * beta / (1 - abar_t)) * x0 + ((1 - beta) ** 0.5 * (1 - abar_prev) / (1 - abar_t)) * x_t
    var = beta * (1 - abar_prev) / (1 - abar_t)
    if noise is None or var <= 0:
        return mean
    return mean + var**0.5 * noise


def ddim_step(
    x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float, clip: bool = False
) -> torch.Tensor:
    """One deterministic DDIM step (Song et al. 2021, Eq. 12 with eta = 0):

    x_t' = sqrt(abar_t') x0_hat + sqrt(1 - abar_t') eps.
    """
    x0 = predict_x0(x_t, eps, abar_t)
    if clip:
        x0 = x0.clamp(-1, 1)
    return abar_prev**0.5 * x0 + (1 - abar_prev) ** 0.5 * eps


def _abar_prev(abar: torch.Tensor, timesteps: Sequence[int], i: int) -> float:
    return float(abar[timesteps[i + 1]]) if i + 1 < len(timesteps) else 1.0


def _eps(eps_model: EpsModel, x: torch.Tensor, t: int) -> torch.Tensor:
    return eps_model(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)).to(x.dtype)


@torch.no_grad()
def sample(
    eps_model: EpsModel,
    x_start: torch.Tensor,
    timesteps: Sequence[int],
    abar: torch.Tensor,
    *,
    method: str = "ddpm",
    data_consistency: DataConsistency | None = None,
    generator: torch.Generator | None = None,
    clip: bool = True,
) -> tuple[torch.Tensor, int]:
    """Run the reverse process from ``x_start`` (at ``timesteps[0]``) down to the clean image.

    Args:
        eps_model: eps_theta(x_t, t).
        x_start: ``(B, C, H, W)``: pure noise for sampling from scratch, or a forward-diffused
            estimate (CCDF's x_{N'}).
        timesteps: descending train-time steps to visit, e.g. ``respaced_timesteps(N)[-k:]``.
        abar: ``(T,)`` alpha_bar.
        method: ``"ddpm"`` (ancestral, stochastic) or ``"ddim"`` (eta = 0, deterministic).
        data_consistency: applied to every x_t' after its step (None: unconditional).
        generator: for the ancestral noise (CPU generator; noise is moved to the device).
        clip: clamp x0_hat to [-1, 1] inside each step.

    Returns:
        ``(x0, nfe)``: the final sample and the number of network evaluations (= len(timesteps)).
    """
    if method not in ("ddpm", "ddim"):
        raise ValueError(f"method must be 'ddpm' or 'ddim', got {method!r}")
    x = x_start
    nfe = 0
    for i, t in enumerate(timesteps):
        abar_t, abar_prev = float(abar[t]), _abar_prev(abar, timesteps, i)
        eps = _eps(eps_model, x, t)
        nfe += 1
        if method == "ddpm":
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) if abar_prev < 1.0 else None
            x = ddpm_step(x, eps, abar_t, abar_prev, z, clip=clip)
        else:
            x = ddim_step(x, eps, abar_t, abar_prev, clip=clip)
        if data_consistency is not None:
            x = data_consistency(x, abar_prev)
    return x, nfe


@torch.no_grad()
def ddim_invert(eps_model: EpsModel, x0: torch.Tensor, timesteps: Sequence[int], abar: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM inversion (eta = 0): run Eq. 12 backwards, clean -> ``timesteps[0]``.

    ``timesteps`` are the same descending steps ``sample(..., method="ddim")`` will visit; the
    inversion walks them in ascending order, approximating eps(x_t', t') by eps(x_t, t) of the
    step below (the usual first-order inversion; exact as the step size goes to 0):

        x_t' = sqrt(abar_t') x0_hat(x_t, t) + sqrt(1 - abar_t') eps(x_t, t),   abar of clean = 1.

    Returns:
        x at ``timesteps[0]``, ``(B, C, H, W)``.
    """
    asc = list(timesteps)[::-1]
    x = x0
    for j, t_next in enumerate(asc):
        t_cur = asc[j - 1] if j > 0 else 0  # the clean image is evaluated at t = 0
        abar_cur = float(abar[asc[j - 1]]) if j > 0 else 1.0
        eps = _eps(eps_model, x, t_cur)
        x = ddim_step(x, eps, abar_cur, float(abar[t_next]))
    return x
