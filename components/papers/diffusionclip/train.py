"""Training: the DDPM of the face domain, then one CLIP-guided fine-tuned copy per target text.

Phases, one global step counter (``components.blocks.training.phase``):

* ``ddpm``: the eps-network on the training faces (Ho et al. 2020, Eq. 14 with the shared
  ``ddpm_loss``; random horizontal flips as celeba.yml's ``random_flip``; EMA of the weights). The
  official code starts from a pretrained DDPM; this is the one it starts from here.
* ``ft/<target>`` (official ``clip_finetune``): ``finetune.images`` training
  faces x0 are inverted once with the frozen DDPM (deterministic DDIM, t0, n_inv steps: the
  precomputed latents). A copy of the DDPM is then fine-tuned for ``iterations`` passes over them:
  each batch is generated from its latents with ``n_train`` DDIM steps of the copy (eta = 0,
  gradients through every step), and Adam minimises clip_weight * L_clip + l1_weight * L_1 against
  the inputs (``losses.finetune_loss``), the direction dT from the target and reference texts with
  template averaging. The learning rate grows by ``lr_gamma`` after every pass (StepLR, gamma 1.3).
  ``mode: eff`` is the official ``clip_finetune_eff``: a loss on the predicted x0 and an Adam step
  after every generation step, the state detached in between.

Every random draw comes from one CPU torch.Generator checkpointed with the networks and optimisers;
the latents are recomputed from the checkpointed DDPM weights on resume, so a killed run resumes to
exactly the weights of an uninterrupted one (CPU, same seed).
"""

from __future__ import annotations

import contextlib
import json
import math
from functools import partial
from typing import Any

import torch
from torch import nn

from components.blocks.clip.losses import text_direction
from components.blocks.clip.model import TextImageModel, load_model
from components.blocks.data.drawings import TEMPLATES
from components.blocks.diffusion.loss import ddpm_loss
from components.blocks.diffusion.schedule import alphas_cumprod
from components.blocks.diffusion.unet import build_eps_unet, eps_fn
from components.blocks.training.phase import PhaseState, ema_update, log_loss_figure, start_phased_run
from components.checkpoint import Checkpointer, export_model
from components.config import config_hash
from components.contract import RunContext
from components.distributed import reduce_gradients, shard
from components.papers.diffusionclip.config import DiffusionCLIPConfig, Target
from components.papers.diffusionclip.data import load_split
from components.papers.diffusionclip.losses import finetune_loss
from components.papers.diffusionclip.sampling import generate, invert


def unet_config(cfg: DiffusionCLIPConfig) -> dict[str, Any]:
    m = cfg.model
    return {
        "channels": 3,
        "block_out_channels": list(m.block_out_channels),
        "layers_per_block": m.layers_per_block,
        "attention": m.attention,
        "norm_num_groups": m.norm_num_groups,
        "sample_size": cfg.data.size,
    }


def batches_per_pass(cfg: DiffusionCLIPConfig) -> int:
    return math.ceil(cfg.finetune.images / cfg.finetune.batch_size)


def phases(cfg: DiffusionCLIPConfig) -> list[tuple[str, int]]:
    """``[(name, steps)]``: ``ddpm``, then ``ft/<target>`` (one step = one batch of latents)."""
    ft = cfg.finetune.iterations * batches_per_pass(cfg)
    return [("ddpm", cfg.train.steps)] + [(f"ft/{t.name}", ft) for t in cfg.finetune.targets]


def abar_of(cfg: DiffusionCLIPConfig) -> torch.Tensor:
    d = cfg.diffusion
    return alphas_cumprod(d.num_train_timesteps, d.beta_start, d.beta_end)


def load_clip(ctx: RunContext) -> tuple[TextImageModel, tuple[str, ...]]:
    """The CLIP block (``models/blocks/clip``) and the prompt templates it was built with."""
    directory = ctx.block_dir("clip")
    model = load_model(directory, ctx.device)
    templates = json.loads((directory / "config.json").read_text()).get("templates") or list(TEMPLATES)
    return model, tuple(templates)


class Latents:
    """The precomputed (x0, x_t0) pairs of the fine-tuning (official ``img_lat_pairs``)."""

    def __init__(self, cfg: DiffusionCLIPConfig, ctx: RunContext, ddpm_weights: dict[str, torch.Tensor]) -> None:
        f = cfg.finetune
        train = load_split(ctx.data_dir, "train")
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed + 17))[: f.images]
        self.x0 = train[pick].to(ctx.device)
        net = build_eps_unet(unet_config(cfg)).to(ctx.device)
        net.load_state_dict(ddpm_weights)
        net.eval()
        abar = abar_of(cfg)
        self.x_lat = torch.cat(
            [invert(eps_fn(net), self.x0[i : i + 64], f.t0, f.n_inv, abar) for i in range(0, len(self.x0), 64)]
        )

    def batch(self, index: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        lo = (index * size) % len(self.x0)
        return self.x0[lo : lo + size], self.x_lat[lo : lo + size]


def _phase(cfg: DiffusionCLIPConfig, ctx: RunContext, name: str, index: int, done: dict) -> PhaseState:
    torch.manual_seed(cfg.seed + index)  # the DDPM's initialisation
    net = build_eps_unet(unet_config(cfg)).to(ctx.device)
    if name == "ddpm":
        return PhaseState(net, torch.optim.Adam(net.parameters(), lr=cfg.train.lr), ctx.use_amp)
    net.load_state_dict(done["ddpm"])  # every fine-tuning starts from the original model
    return PhaseState(net, torch.optim.Adam(net.parameters(), lr=cfg.finetune.lr, weight_decay=0), ctx.use_amp)


class _FineTuner:
    """One batch of CLIP-guided fine-tuning of one target (``full`` or ``eff`` mode)."""

    def __init__(self, cfg: DiffusionCLIPConfig, clip: TextImageModel, templates: tuple[str, ...]) -> None:
        self.cfg, self.clip, self.templates = cfg, clip, templates
        self.abar = abar_of(cfg)
        self.directions: dict[str, torch.Tensor] = {}

    def direction(self, target: Target) -> torch.Tensor:
        if target.name not in self.directions:
            with torch.no_grad():
                self.directions[target.name] = text_direction(self.clip, target.source, target.target, self.templates)
        return self.directions[target.name]

    def step(self, phase: PhaseState, target: Target, x0: torch.Tensor, x_lat: torch.Tensor, lr: float) -> dict:
        f = self.cfg.finetune
        for group in phase.opt.param_groups:
            group["lr"] = lr
        direction = self.direction(target)
        eps = partial(shard, eps_fn(phase.net))  # under torchrun, each rank's block of the batch
        phase.net.train()

        def update(loss: torch.Tensor) -> None:
            phase.opt.zero_grad(set_to_none=True)
            phase.scaler.scale(loss).backward()
            reduce_gradients(phase.net.parameters())
            phase.scaler.step(phase.opt)
            phase.scaler.update()

        if f.mode == "full":
            x = generate(eps, x_lat, f.t0, f.n_train, self.abar)
            loss, parts = finetune_loss(self.clip, x, x0, direction, f.clip_weight, f.l1_weight)
            update(loss)
            return parts
        last: dict[str, float] = {}

        def hook(i: int, x_next: torch.Tensor, x0_pred: torch.Tensor) -> torch.Tensor:
            loss, parts = finetune_loss(self.clip, x0_pred, x0, direction, f.clip_weight, f.l1_weight)
            update(loss)
            last.update(parts)
            return x_next.detach()

        generate(eps, x_lat, f.t0, f.n_train, self.abar, hook=hook)
        return last


def train(cfg: DiffusionCLIPConfig, ctx: RunContext) -> None:
    """Train (or resume) the DDPM and every fine-tuned model; export them."""
    t, f = cfg.train, cfg.finetune
    plan = phases(cfg)
    ends = [sum(s for _, s in plan[: i + 1]) for i in range(len(plan))]
    total = ends[-1]
    ckpt = Checkpointer(ctx.checkpoint_dir, config_hash(cfg, exclude={"device"}))
    run = start_phased_run(ckpt, cfg.seed, total, ctx.log, "diffusionclip")
    gen, done, history = run.generator, run.done, run.history
    data = load_split(ctx.data_dir, "train")
    abar = abar_of(cfg)
    idx = next((i for i, e in enumerate(ends) if run.first_step < e), len(plan))
    current = _phase(cfg, ctx, plan[idx][0], idx, done) if idx < len(plan) else None
    if current is not None and run.resumed is not None and run.resumed["state"]["current"]:
        current.load(run.resumed["state"]["current"])
    tuner: _FineTuner | None = None
    latents: Latents | None = None
    targets = {f"ft/{x.name}": x for x in f.targets}
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if ctx.use_amp else contextlib.nullcontext
    running: dict[str, list[float]] = {}
    per_pass = batches_per_pass(cfg)
    for step in ctx.progress(
        range(run.first_step, total), total=total, desc="diffusionclip train", initial=run.first_step
    ):
        name = plan[idx][0]
        assert current is not None  # step < total, so a phase is open
        start = ends[idx] - plan[idx][1]
        if name == "ddpm":
            current.net.train()
            x0 = data[torch.randint(0, len(data), (t.batch_size,), generator=gen)]
            flip = torch.rand(t.batch_size, generator=gen) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0).to(ctx.device)
            with autocast():  # shard: under torchrun, each rank's block of the batch
                loss = ddpm_loss(partial(shard, eps_fn(current.net)), x0, abar, gen)
            current.opt.zero_grad(set_to_none=True)
            current.scaler.scale(loss).backward()
            reduce_gradients(current.net.parameters())  # torchrun: the full-batch gradient on every rank
            current.scaler.unscale_(current.opt)
            nn.utils.clip_grad_norm_(current.net.parameters(), t.grad_clip)
            current.scaler.step(current.opt)
            current.scaler.update()
            ema_update(current.ema, current.net, t.ema_decay, step + 1 - start)
            parts = {"loss": float(loss.detach())}
        else:
            if tuner is None:
                clip, templates = load_clip(ctx)
                tuner = _FineTuner(cfg, clip, templates)
                latents = Latents(cfg, ctx, done["ddpm"])
            assert latents is not None
            k = step - start
            x0, x_lat = latents.batch(k % per_pass, f.batch_size)
            with autocast():
                parts = tuner.step(current, targets[name], x0, x_lat, f.lr * f.lr_gamma ** (k // per_pass))
        for key, value in parts.items():
            running.setdefault(f"loss/{name.replace('/', '_')}/{key}", []).append(value)
        if (step + 1) % (t.log_every if name == "ddpm" else per_pass) == 0 or step + 1 == ends[idx]:
            for key, values in running.items():
                history.setdefault(key, []).extend([float(step + 1), sum(values) / len(values)])
                ctx.logger.log_metrics({key: history[key][-1]}, step=step + 1)
            running = {}
        phase_end = step + 1 == ends[idx]
        if phase_end:
            weights = current.ema if name == "ddpm" else current.net.state_dict()
            done[name] = {k: v.detach().cpu().clone() for k, v in weights.items()}
            idx += 1
            current = _phase(cfg, ctx, plan[idx][0], idx, done) if idx < len(plan) else None
        if (step + 1) % t.checkpoint_every == 0 or phase_end:
            state = {
                "current": current.state() if current else {},
                "generator": gen.get_state(),
                "done": done,
                "history": history,
            }
            ckpt.save(step + 1, state, cfg.model_dump(mode="json"))
    _export(cfg, ctx, done)
    curves = {k: v for k, v in history.items() if k.endswith(("/loss", "/clip", "/l1"))}
    log_loss_figure(ctx.logger, curves, "loss", "DiffusionCLIP training: DDPM, then CLIP-guided fine-tuning")


def _export(cfg: DiffusionCLIPConfig, ctx: RunContext, done: dict[str, dict[str, torch.Tensor]]) -> None:
    flat = {f"original.{k}": v for k, v in done["ddpm"].items()}
    for target in cfg.finetune.targets:
        flat.update({f"ft.{target.name}.{k}": v for k, v in done[f"ft/{target.name}"].items()})
    f = cfg.finetune
    config = {
        "paper": "diffusionclip",
        "unet": unet_config(cfg),
        "size": cfg.data.size,
        "diffusion": cfg.diffusion.model_dump(mode="json"),
        "targets": [x.model_dump(mode="json") for x in f.targets],
        "sampling": {"t0": f.t0, "n_inv": f.n_inv, "n_gen": f.n_gen},
    }
    export_model(ctx.model_dir, flat, config)
