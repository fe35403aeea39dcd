"""Diffusion blocks: schedule, q_sample statistics, the eps loss, steps vs diffusers, DDIM inversion."""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler

from components.blocks.diffusion.loss import ddpm_loss
from components.blocks.diffusion.samplers import ddim_invert, ddim_step, ddpm_step, sample
from components.blocks.diffusion.schedule import alphas_cumprod, make_scheduler, q_sample, respaced_timesteps
from components.blocks.diffusion.unet import build_eps_unet, eps_fn

torch.set_num_threads(1)
ABAR = alphas_cumprod()
TINY = {"channels": 1, "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4, "sample_size": 16}


def test_schedule_is_the_linear_one() -> None:
    betas = 1 - ABAR / torch.cat([torch.ones(1, dtype=ABAR.dtype), ABAR[:-1]])
    assert torch.allclose(betas[[0, -1]], torch.tensor([1e-4, 0.02], dtype=ABAR.dtype), atol=1e-7)
    assert respaced_timesteps(10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert respaced_timesteps(1000)[-1] == 0 and len(respaced_timesteps(100)[-20:]) == 20


def test_q_sample_statistics_match_alpha_bar() -> None:
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1, 1, 1), 0.7)
    for t in (0, 250, 999):
        xt = q_sample(x0, torch.full((20000,), t), torch.randn(x0.shape, generator=gen), ABAR)
        a = float(ABAR[t])
        assert abs(float(xt.mean()) - a**0.5 * 0.7) < 0.02
        assert abs(float(xt.var()) - (1 - a)) < 0.03 + 0.05 * (1 - a)


def test_q_sample_matches_diffusers_add_noise() -> None:
    sched = make_scheduler()
    x0, noise, t = torch.rand(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 500, 999])
    assert torch.allclose(q_sample(x0, t, noise, ABAR), sched.add_noise(x0, noise, t), atol=1e-5)


def test_steps_match_diffusers_schedulers() -> None:
    x, eps, z = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    ddpm = make_scheduler()
    ddpm.set_timesteps(50)
    t = int(ddpm.timesteps[5])
    t_prev = int(ddpm.timesteps[6])
    ours = ddpm_step(x, eps, float(ABAR[t]), float(ABAR[t_prev]), z, clip=True)
    theirs = ddpm.step(eps, t, x, generator=torch.Generator().manual_seed(0)).prev_sample
    mean = ddpm_step(x, eps, float(ABAR[t]), float(ABAR[t_prev]), None, clip=True)
    var = float(ddpm._get_variance(t, t_prev))
    z_theirs = (theirs - mean) / var**0.5
    assert torch.allclose(z_theirs, torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)), atol=1e-3)
    assert torch.allclose(ours, mean + var**0.5 * z, atol=1e-5)
    ddim = DDIMScheduler(beta_start=1e-4, beta_end=0.02, clip_sample=False, timestep_spacing="trailing")
    ddim.set_timesteps(50)
    t, t_prev = int(ddim.timesteps[3]), int(ddim.timesteps[4])
    assert torch.allclose(
        ddim_step(x, eps, float(ABAR[t]), float(ABAR[t_prev])), ddim.step(eps, t, x, eta=0.0).prev_sample, atol=1e-5
    )


def _gaussian_eps(sigma2: float):
    """The exact eps-predictor for data x0 ~ N(0, sigma2 I): eps*(x_t) = sqrt(1-a) x_t / (a sigma2 + 1 - a)."""

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = ABAR[t.long()].to(x.dtype).view(-1, 1, 1, 1)
        return (1 - a).sqrt() * x / (a * sigma2 + 1 - a)

    return fn


def test_ddim_inversion_then_sampling_reconstructs_x0() -> None:
    gen = torch.Generator().manual_seed(0)
    x0 = 0.5 * torch.randn(4, 1, 8, 8, generator=gen)
    fn = _gaussian_eps(0.25)
    errors = []
    for n in (50, 1000):  # first-order inversion: the error shrinks with the step size
        steps = respaced_timesteps(n)[-(2 * n // 5) :]
        rec, nfe = sample(fn, ddim_invert(fn, x0, steps, ABAR), steps, ABAR, method="ddim", clip=False)
        assert nfe == len(steps)
        errors.append(float((rec - x0).norm() / x0.norm()))
    assert errors[1] < 0.01 and errors[1] < errors[0] / 10
    torch.manual_seed(0)  # and with a small (untrained) UNet2DModel, few steps from a mid level
    unet = build_eps_unet(TINY).eval()
    x0 = torch.rand(2, 1, 16, 16) * 2 - 1
    steps = respaced_timesteps(200)[-20:]
    rec, _ = sample(eps_fn(unet), ddim_invert(eps_fn(unet), x0, steps, ABAR), steps, ABAR, method="ddim", clip=False)
    assert float((rec - x0).pow(2).mean().sqrt()) < 0.05 * float(x0.pow(2).mean().sqrt())


def test_ddpm_sampling_with_exact_model_has_the_data_variance() -> None:
    fn = _gaussian_eps(0.25)
    x, _ = sample(
        fn,
        torch.randn(2000, 1, 2, 2, generator=torch.Generator().manual_seed(1)),
        respaced_timesteps(1000),
        ABAR,
        generator=torch.Generator().manual_seed(2),
        clip=False,
    )
    assert abs(float(x.var()) - 0.25) < 0.03


def test_data_consistency_is_applied_each_step() -> None:
    calls: list[float] = []

    def dc(x: torch.Tensor, abar_prev: float) -> torch.Tensor:
        calls.append(abar_prev)
        return torch.zeros_like(x)

    out, nfe = sample(
        _gaussian_eps(1.0), torch.randn(1, 1, 4, 4), respaced_timesteps(10)[-3:], ABAR, data_consistency=dc
    )
    assert nfe == 3 and len(calls) == 3 and calls[-1] == 1.0 and torch.equal(out, torch.zeros(1, 1, 4, 4))


def test_ddpm_loss_falls_on_a_tiny_dataset() -> None:
    torch.manual_seed(0)
    unet = build_eps_unet(TINY)
    data = torch.rand(16, 1, 16, 16) * 2 - 1
    opt = torch.optim.Adam(unet.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)

    def eval_loss() -> float:
        with torch.no_grad():
            return float(
                sum(ddpm_loss(eps_fn(unet), data, ABAR, torch.Generator().manual_seed(s)) for s in range(4)) / 4
            )

    before = eval_loss()
    for _ in range(30):
        loss = ddpm_loss(eps_fn(unet), data, ABAR, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < 0.7 * before
