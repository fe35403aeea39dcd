"""DDIM inversion and generation on DiffusionCLIP's step sequences, and the noise combinations.

Step sequences (official ``diffusionclip.py``): ``seq = [int(s) for s in np.linspace(0, 1, n) * t0]``,
ascending from 0 to t0. The generative process visits ``seq`` in reverse, t0 -> ... -> 0 -> clean
(``denoising_step`` with t_next = -1 meaning alpha_bar = 1): n deterministic DDIM steps (Song et al.
2021, Eq. 12 with eta = 0), written in ``components.blocks.diffusion.samplers.ddim_step``.

Inversion (the paper's "deterministic DDIM inversion"): the same steps run forward,
x_{t'} = sqrt(abar_t') x0_hat(x_t, t) + sqrt(1 - abar_t') eps(x_t, t), clean -> 0 -> ... -> t0, with the
shared block's ``ddim_invert``. Difference to the official loop: it starts at the clean image as if
it were x at t = 0 (alpha_bar_0 = 0.9999); the block adds the first, tiny step from the clean image
(alpha_bar = 1) to t = 0, which the generation's last step exactly mirrors, so inversion and
generation visit the same states.

The baseline the paper's inversion beats: stochastic forward noising, x_t0 = sqrt(abar) x0 +
sqrt(1 - abar) eps (Ho et al. Eq. 4; the official ``deterministic_inv=0`` path), then the same
generation.

Noise combinations (the paper's noise combination; official ``denoising_step``): ``ratio_eps`` mixes the original
and a fine-tuned model, eps = r eps_ft + (1 - r) eps_orig (``model_ratio``: the degree of change);
``hybrid_eps`` mixes several fine-tuned models with ratios that depend on the time step
(``HYBRID_CONFIG``: for the first threshold with t >= threshold, eps = sum_i r_i eps_i / sum_i r_i).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from components.blocks.diffusion.loss import EpsModel
from components.blocks.diffusion.samplers import ddim_invert, ddim_step, predict_x0
from components.blocks.diffusion.schedule import q_sample


def step_sequence(t0: int, n: int) -> list[int]:
    """The official ascending sequence ``[int(s) for s in linspace(0, 1, n) * t0]`` (0 ... t0)."""
    if not 1 <= t0 or not 1 <= n:
        raise ValueError(f"t0 and n must be >= 1, got t0={t0}, n={n}")
    return [int(s) for s in np.linspace(0, 1, n) * t0]


def timesteps(t0: int, n: int) -> list[int]:
    """The generative process's steps, descending from t0 to 0 (n of them)."""
    return step_sequence(t0, n)[::-1]


def _t(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


@torch.no_grad()
def invert(eps: EpsModel, x0: torch.Tensor, t0: int, n: int, abar: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM inversion of clean images ``(B, C, H, W)`` in [-1, 1] to x_t0."""
    return ddim_invert(eps, x0, timesteps(t0, n), abar)


def forward_noise(x0: torch.Tensor, t0: int, abar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Stochastic forward noising to step t0 (Ho et al. Eq. 4), noise from ``generator`` (CPU)."""
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    return q_sample(x0, torch.tensor(t0), noise, abar)


StepHook = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
"""``hook(i, x_next, x0_pred) -> x_next``: called after generation step i (the eff fine-tuning)."""


def generate(
    eps: EpsModel,
    x_t0: torch.Tensor,
    t0: int,
    n: int,
    abar: torch.Tensor,
    hook: StepHook | None = None,
) -> torch.Tensor:
    """DDIM generation (eta = 0) from x_t0 to the clean image in n steps; differentiable unless
    called under ``torch.no_grad()``."""
    ts = timesteps(t0, n)
    x = x_t0
    for i, t in enumerate(ts):
        abar_t = float(abar[t])
        abar_next = float(abar[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        e = eps(x, _t(x, t)).to(x.dtype)
        x_next = ddim_step(x, e, abar_t, abar_next)
        x = hook(i, x_next, predict_x0(x, e, abar_t)) if hook is not None else x_next
    return x


def ratio_eps(original: EpsModel, finetuned: EpsModel, ratio: float) -> EpsModel:
    """``model_ratio``: eps = r eps_ft + (1 - r) eps_orig; r = 0 and r = 1 call one model only."""

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if ratio == 1.0:
            return finetuned(x, t)
        if ratio == 0.0:
            return original(x, t)
        return ratio * finetuned(x, t) + (1 - ratio) * original(x, t)

    return fn


def hybrid_eps(models: Sequence[EpsModel], schedule: Sequence[tuple[int, Sequence[float]]]) -> EpsModel:
    """Time-dependent mixture of ``models`` (HYBRID_CONFIG): for the first ``(threshold, ratios)`` with
    t >= threshold, eps = sum_i r_i eps_i(x, t) / sum_i r_i; models with ratio 0 are not evaluated."""

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        step = int(t.reshape(-1)[0])
        for threshold, ratios in schedule:
            if step >= threshold:
                total = float(sum(ratios))
                parts = [r / total * models[i](x, t) for i, r in enumerate(ratios) if r != 0]
                return torch.stack(parts).sum(0)
        raise ValueError(f"no threshold of the schedule covers t = {step}")

    return fn
