"""Training: one DDPM score model for all tasks, then one feed-forward initialiser per task.

Phases, one global step counter: ``score`` (the eps-network on photo patches AND MR-slice patches,
``data.train_size`` squares: the network is convolutional and is applied to larger images at test;
DDPM Eq. 14, EMA of the weights), then ``init/sr``, ``init/inpaint``, ``init/mri`` (N2N U-Nets
trained supervised on (simple estimate, truth) pairs with fresh random masks every batch). Every
random draw comes from one CPU torch.Generator checkpointed with the networks, optimisers, EMA and
AMP scaler, so a killed run resumes to exactly the weights of an uninterrupted one (CPU, same seed).

One score model serves all three tasks: the CCDF claim is about the sampler, and training one
network on the union of the natural patches and the phantoms keeps the default scale in budget.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import torch
from torch import nn

from components.blocks.diffusion.schedule import alphas_cumprod
from components.blocks.diffusion.unet import build_eps_unet, eps_fn
from components.blocks.training.phase import PhaseState, ema_update, log_loss_figure, start_phased_run
from components.checkpoint import Checkpointer, export_model
from components.config import config_hash
from components.contract import RunContext
from components.distributed import reduce_gradients, shard
from components.papers.ccdf.config import CCDFConfig
from components.papers.ccdf.data import load_split, task_kind
from components.papers.ccdf.losses import ddpm_loss, init_loss
from components.papers.ccdf.model import build_init_net
from components.papers.ccdf.tasks import TASKS, simple_init, simulate


def unet_config(cfg: CCDFConfig) -> dict[str, Any]:
    m = cfg.model
    return {
        "channels": 1,
        "block_out_channels": list(m.block_out_channels),
        "layers_per_block": m.layers_per_block,
        "attention": m.attention,
        "norm_num_groups": m.norm_num_groups,
        "sample_size": cfg.data.size,
    }


def init_config(cfg: CCDFConfig) -> dict[str, Any]:
    return {"init_width": cfg.model.init_width, "init_depth": cfg.model.init_depth}


def phases(cfg: CCDFConfig) -> list[tuple[str, int]]:
    """``[(name, steps)]``: ``score`` then ``init/<task>`` for every task (when init_steps > 0)."""
    return [("score", cfg.train.steps)] + (
        [(f"init/{t}", cfg.train.init_steps) for t in TASKS] if cfg.train.init_steps else []
    )


def _phase(cfg: CCDFConfig, ctx: RunContext, name: str, index: int) -> PhaseState:
    """Network, EMA, optimiser and scaler of one phase."""
    torch.manual_seed(cfg.seed + index)  # the network's initialisation
    score = name == "score"
    net = (build_eps_unet(unet_config(cfg)) if score else build_init_net(init_config(cfg))).to(ctx.device)
    lr = cfg.train.lr if score else cfg.train.init_lr
    return PhaseState(net, torch.optim.Adam(net.parameters(), lr=lr), ctx.use_amp)


def _loss(
    name: str,
    phase: PhaseState,
    cfg: CCDFConfig,
    data: dict[str, torch.Tensor],
    abar: torch.Tensor,
    gen: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    if name == "score":
        pool = data["all"]
        x0 = pool[torch.randint(0, len(pool), (cfg.train.batch_size,), generator=gen)]
        return ddpm_loss(partial(shard, eps_fn(phase.net)), x0.to(device), abar, gen)  # shard: torchrun's block
    task = name.split("/")[1]
    pool = data[task_kind(task)]
    x = pool[torch.randint(0, len(pool), (cfg.train.batch_size,), generator=gen)]
    op, y = simulate(task, x, cfg.task, gen)
    return init_loss(partial(shard, phase.net), simple_init(task, op, y).to(device), x.to(device))


def train(cfg: CCDFConfig, ctx: RunContext) -> None:
    """Train (or resume) every phase; export the EMA score model and the initialisers."""
    t = cfg.train
    plan = phases(cfg)
    ends = [sum(s for _, s in plan[: i + 1]) for i in range(len(plan))]
    total = ends[-1]
    ckpt = Checkpointer(ctx.checkpoint_dir, config_hash(cfg, exclude={"device"}))
    run = start_phased_run(ckpt, cfg.seed, total, ctx.log, "ccdf")
    gen, first_step, done, history, resumed = run.generator, run.first_step, run.done, run.history, run.resumed
    natural, mri = load_split(ctx.data_dir, "train", "natural"), load_split(ctx.data_dir, "train", "mri")
    data = {"natural": natural, "mri": mri if len(mri) else natural, "all": torch.cat([natural, mri])}
    s = cfg.sampling
    abar = alphas_cumprod(s.num_train_timesteps, s.beta_start, s.beta_end)
    idx = next((i for i, e in enumerate(ends) if first_step < e), len(plan))
    current = None
    if idx < len(plan):
        current = _phase(cfg, ctx, plan[idx][0], idx)
        if resumed is not None and resumed["state"]["current"]:
            current.load(resumed["state"]["current"])
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if ctx.use_amp else contextlib.nullcontext
    running: list[float] = []
    for step in ctx.progress(range(first_step, total), total=total, desc="ccdf train", initial=first_step):
        name = plan[idx][0]
        assert current is not None  # step < total = ends[-1], so idx < len(plan) and a phase is open
        current.net.train()
        with autocast():
            loss = _loss(name, current, cfg, data, abar, gen, ctx.device)
        current.opt.zero_grad(set_to_none=True)
        current.scaler.scale(loss).backward()
        reduce_gradients(current.net.parameters())  # torchrun: the full-batch gradient on every rank
        current.scaler.unscale_(current.opt)
        nn.utils.clip_grad_norm_(current.net.parameters(), t.grad_clip)
        current.scaler.step(current.opt)
        current.scaler.update()
        start = ends[idx] - plan[idx][1]
        ema_update(current.ema, current.net, t.ema_decay if name == "score" else 0.0, step + 1 - start)
        running.append(float(loss.detach()))
        if (step + 1) % t.log_every == 0 or step + 1 == ends[idx]:
            key = f"loss/{name.replace('/', '_')}"
            history.setdefault(key, []).extend([float(step + 1), sum(running) / len(running)])
            ctx.logger.log_metrics({key: history[key][-1]}, step=step + 1)
            running = []
        if step + 1 == ends[idx]:
            done[name] = {k: v.cpu() for k, v in current.ema.items()}
            idx += 1
            current = _phase(cfg, ctx, plan[idx][0], idx) if idx < len(plan) else None
        if (step + 1) % t.checkpoint_every == 0 or step + 1 == total:
            state = {
                "current": current.state() if current else {},
                "generator": gen.get_state(),
                "done": done,
                "history": history,
            }
            ckpt.save(step + 1, state, cfg.model_dump(mode="json"))
    _export(cfg, ctx, done)
    log_loss_figure(ctx.logger, history, "loss (eps MSE / init MSE)", "CCDF training: score model, then initialisers")


def _export(cfg: CCDFConfig, ctx: RunContext, done: dict[str, dict[str, torch.Tensor]]) -> None:
    flat = {f"score.{k}": v for k, v in done["score"].items()}
    tasks = [t for t in TASKS if f"init/{t}" in done]
    for task in tasks:
        flat.update({f"init.{task}.{k}": v for k, v in done[f"init/{task}"].items()})
    config = {
        "paper": "ccdf",
        "unet": unet_config(cfg),
        "init": init_config(cfg),
        "init_tasks": tasks,
        "task": cfg.task.model_dump(mode="json"),
        "sampling": cfg.sampling.model_dump(mode="json"),
        "size": cfg.data.size,
    }
    export_model(ctx.model_dir, flat, config)
