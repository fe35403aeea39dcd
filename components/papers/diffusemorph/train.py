"""Training: DiffuseMorph (score + deformation nets, jointly) and the VoxelMorph-style baseline.

DiffuseMorph step (official GaussianDiffusion.p_losses): t ~ U{0..T-1}, eps ~ N(0, I),
x_t = sqrt(abar_t) F + sqrt(1 - abar_t) eps (DDPM Eq. 4); eps_hat = eps_theta([M, F, x_t], t);
(phi o M, phi) = G([M, eps_hat]); loss = MSE(eps, eps_hat) - lambda LNCC(phi o M, F)
+ lambda mean |grad phi|^2. The registration loss flows back into the score network through
eps_hat (nothing is detached, as in the official code). Adam, betas (0.5, 0.999) (official
model/model.py). Baseline: the same deformation network on [M, F], the same loss without the
score term. Both train in one loop on the same batches; every draw comes from one CPU generator
checkpointed with the networks, optimisers and AMP scalers (float16 autocast on CUDA only), so a
kill -9 resumes to the same weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch

from components.blocks.diffusion.schedule import alphas_cumprod, q_sample
from components.checkpoint import Checkpointer, export_model
from components.config import config_hash
from components.contract import RunContext
from components.distributed import reduce_gradients, shard
from components.papers.diffusemorph.config import DiffuseMorphConfig
from components.papers.diffusemorph.data import load_split
from components.papers.diffusemorph.losses import diffusion_loss, registration_loss
from components.papers.diffusemorph.model import build, export_config


def _nets(
    cfg: DiffuseMorphConfig, ctx: RunContext
) -> tuple[Any, Any, Any, torch.optim.Optimizer, torch.optim.Optimizer]:
    torch.manual_seed(cfg.seed)
    nets = build(cfg.model.model_dump(mode="json"), cfg.data.size, cfg.data.dims)
    score, field, base = (n.to(ctx.device) for n in nets)
    betas = (0.5, 0.999)  # official model/model.py
    opt = torch.optim.Adam([*score.parameters(), *field.parameters()], lr=cfg.train.lr, betas=betas)
    opt_b = torch.optim.Adam(base.parameters(), lr=cfg.train.lr, betas=betas)
    return score, field, base, opt, opt_b


def diffusemorph_step(
    score: torch.nn.Module,
    field: torch.nn.Module,
    m: torch.Tensor,
    f: torch.Tensor,
    abar: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    lam: float,
    autocast: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The official p_losses on one batch: returns ``(l_pix, l_sim, l_smt)``.

    The networks run under ``autocast`` (float16 on CUDA); the losses are computed in float32
    (LNCC's 1e-5 on the variance product would vanish in float16)."""
    x_t = q_sample(f, t, noise, abar)
    with autocast():
        eps_hat = shard(score, torch.cat([m, f, x_t], dim=1), t)  # (B, 1, *S); shard: torchrun's block
        warped, flow = shard(field, torch.cat([m, eps_hat], dim=1))
    l_sim, l_smt = registration_loss(warped.float(), f, flow.float(), lam)
    return diffusion_loss(noise, eps_hat.float()), l_sim, l_smt


def train(cfg: DiffuseMorphConfig, ctx: RunContext) -> None:
    """Train (or resume) both models; export them to ``ctx.model_dir``."""
    tc = cfg.train
    d = cfg.diffusion
    abar = alphas_cumprod(d.num_train_timesteps, d.beta_start, d.beta_end).float().to(ctx.device)
    data = load_split(ctx.data_dir, "train")
    score, field, base, opt, opt_b = _nets(cfg, ctx)
    scaler, scaler_b = (torch.amp.GradScaler("cuda", enabled=ctx.use_amp) for _ in range(2))
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if ctx.use_amp else contextlib.nullcontext
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpt = Checkpointer(ctx.checkpoint_dir, config_hash(cfg, exclude={"device"}))
    history: dict[str, list[float]] = {}
    first = 0
    resumed = ckpt.latest()
    if resumed is not None:
        st = resumed["state"]
        for net, key in ((score, "score"), (field, "field"), (base, "baseline")):
            net.load_state_dict(st[key])
        opt.load_state_dict(st["opt"])
        opt_b.load_state_dict(st["opt_b"])
        scaler.load_state_dict(st["scaler"])
        scaler_b.load_state_dict(st["scaler_b"])
        gen.set_state(st["generator"])
        history, first = st["history"], int(resumed["step"])
        ctx.log.info("resuming diffusemorph training from step %d", first)
    n = len(data["moving"])
    running: dict[str, list[float]] = {}
    for step in ctx.progress(range(first, tc.steps), total=tc.steps, desc="diffusemorph train", initial=first):
        idx = torch.randint(0, n, (tc.batch_size,), generator=gen)
        m, f = data["moving"][idx].to(ctx.device), data["fixed"][idx].to(ctx.device)
        t = torch.randint(0, d.num_train_timesteps, (tc.batch_size,), generator=gen).to(ctx.device)
        noise = torch.randn(f.shape, generator=gen).to(ctx.device)
        l_pix, l_sim, l_smt = diffusemorph_step(score, field, m, f, abar, t, noise, tc.loss_lambda, autocast)
        loss = l_pix + l_sim + l_smt
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        reduce_gradients([*score.parameters(), *field.parameters()])  # torchrun: the full-batch gradient
        scaler.step(opt)
        scaler.update()
        with autocast():
            warped_b, flow_b = shard(base, torch.cat([m, f], dim=1))
        b_sim, b_smt = registration_loss(warped_b.float(), f, flow_b.float(), tc.loss_lambda)
        opt_b.zero_grad(set_to_none=True)
        scaler_b.scale(b_sim + b_smt).backward()
        reduce_gradients(base.parameters())
        scaler_b.step(opt_b)
        scaler_b.update()
        for k, loss in (("pix", l_pix), ("sim", l_sim), ("smt", l_smt), ("baseline_sim", b_sim)):
            running.setdefault(k, []).append(float(loss.detach()))
        if (step + 1) % tc.log_every == 0 or step + 1 == tc.steps:
            means = {f"loss/{k}": sum(v) / len(v) for k, v in running.items()}
            for k, v in means.items():
                history.setdefault(k, []).extend([float(step + 1), v])
            ctx.logger.log_metrics(means, step=step + 1)
            running = {}
        if (step + 1) % tc.checkpoint_every == 0 or step + 1 == tc.steps:
            state = {
                "score": score.state_dict(),
                "field": field.state_dict(),
                "baseline": base.state_dict(),
                "opt": opt.state_dict(),
                "opt_b": opt_b.state_dict(),
                "scaler": scaler.state_dict(),
                "scaler_b": scaler_b.state_dict(),
                "generator": gen.get_state(),
                "history": history,
            }
            ckpt.save(step + 1, state, cfg.model_dump(mode="json"))
    flat = {f"score.{k}": v for k, v in score.state_dict().items()}
    flat.update({f"field.{k}": v for k, v in field.state_dict().items()})
    flat.update({f"baseline.{k}": v for k, v in base.state_dict().items()})
    export_model(ctx.model_dir, flat, export_config(cfg))
