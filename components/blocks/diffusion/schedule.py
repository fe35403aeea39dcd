"""The DDPM noise schedule (Ho et al. 2020): linear betas 1e-4 -> 0.02 over T = 1000 steps.

The schedule comes from diffusers' ``DDPMScheduler`` (one source of truth for beta_t and
alpha_bar_t); this module adds the forward diffusion ``q_sample`` (Ho et al. Eq. 4) and the
"trailing" respacing of the reverse process into N < T steps.

Notation: ``alpha_bar[t] = prod_{s<=t} (1 - beta_s)`` for t = 0..T-1 (0-based, as diffusers);
alpha_bar of "no noise" (before step 0) is 1.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler

T_DEFAULT = 1000
BETA_START, BETA_END = 1e-4, 0.02  # Ho et al. 2020, Sec. 4; the schedule of the CCDF/ILVR code


def make_scheduler(
    num_train_timesteps: int = T_DEFAULT, beta_start: float = BETA_START, beta_end: float = BETA_END
) -> DDPMScheduler:
    """diffusers' DDPMScheduler with the linear schedule (fixed-small posterior variance)."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_start=beta_start,
        beta_end=beta_end,
        beta_schedule="linear",
        variance_type="fixed_small",
        clip_sample=True,
        timestep_spacing="trailing",
    )


def alphas_cumprod(
    num_train_timesteps: int = T_DEFAULT, beta_start: float = BETA_START, beta_end: float = BETA_END
) -> torch.Tensor:
    """``alpha_bar``: float64 ``(T,)``, decreasing from 1 - beta_start."""
    sched = make_scheduler(num_train_timesteps, beta_start, beta_end)
    return sched.alphas_cumprod.to(torch.float64)


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """Forward diffusion to step t in one jump (Ho et al. Eq. 4):

        x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps.

    Args:
        x0: ``(B, C, H, W)`` clean images.
        t: ``(B,)`` integer steps in [0, T), or a scalar tensor for the whole batch.
        noise: eps, shaped like ``x0``.
        abar: ``(T,)`` alpha_bar.
    """
    a = abar.to(x0.device)[t.to(x0.device).long()].to(x0.dtype)
    a = a.reshape(-1, *([1] * (x0.dim() - 1))) if a.dim() else a
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def respaced_timesteps(num_steps: int, num_train_timesteps: int = T_DEFAULT) -> list[int]:
    """The N reverse-process steps, descending, "trailing" spacing (diffusers DDIM/DDPM schedulers):

        tau_i = round(i * T / N) - 1,  i = N .. 1   (so tau_N = T - 1; tau_1 = T/N - 1).

    ``respaced_timesteps(N)[-k:]`` are the last k of them: the N' = t0 N steps CCDF runs.
    """
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"num_steps must be in [1, {num_train_timesteps}], got {num_steps}")
    return [round(i * num_train_timesteps / num_steps) - 1 for i in range(num_steps, 0, -1)]
