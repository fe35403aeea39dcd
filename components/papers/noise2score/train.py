"""Training: the AR-DAE score networks (one per family) and the Noise2Clean baselines.

The run is a list of phases, ``score/<family>`` then ``clean/<family>``, trained one after another
with one global step counter. Every random draw (batch indices, noise level, noise, sigma_a, u)
comes from one torch.Generator whose state is checkpointed with the model, the EMA, the optimiser
and the AMP scaler, so a run killed at any point and rerun resumes from its last checkpoint and
ends with exactly the weights of an uninterrupted run (CPU, same seed).

Per step, following the official code (NoiseAdaptive2Score models/*_model.py
``optimize_parameters``): draw random crops of the training photographs (``data.sample_batch``),
one noise level per batch (log-uniform, ``set_phi``), corrupt the clean crops, draw sigma_a
(annealed as Noise2Score's ``set_sigma``, see losses.py), take an Adam step on the AR-DAE loss (or,
for the baseline, the supervised MSE), clip the gradient norm at 1, update the EMA (decay 0.999,
with the warm-up min(decay, (1+t)/(10+t)) of models/ema.py). The EMA weights are what is exported
and evaluated, as in the official code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from components.blocks.training.phase import PhaseState, ema_update, log_loss_figure, start_phased_run
from components.checkpoint import Checkpointer, export_model
from components.config import config_hash
from components.contract import RunContext
from components.papers.noise2score.config import Noise2ScoreConfig
from components.papers.noise2score.data import load_train, sample_batch
from components.papers.noise2score.losses import ardae_loss, draw_sigma_a, noise2clean_loss
from components.papers.noise2score.model import build_net, score_gain
from components.papers.noise2score.noise import add_noise, sample_level

CHANNELS = 3


def model_config(cfg: Noise2ScoreConfig) -> dict[str, Any]:
    return {"channels": CHANNELS, "width": cfg.model.width, "depth": cfg.model.depth}


def gains(cfg: Noise2ScoreConfig) -> dict[str, float]:
    """The score networks' output gains (model.GainNet), from the training noise ranges."""
    return {f: score_gain(f, getattr(cfg.train.noise, f)) for f in cfg.train.families}


def phases(cfg: Noise2ScoreConfig) -> list[tuple[str, str, int]]:
    """``[(kind, family, steps)]``: score networks first, then the Noise2Clean baselines."""
    out: list[tuple[str, str, int]] = [("score", f, cfg.train.steps) for f in cfg.train.families]
    if cfg.train.baseline_steps:
        out += [("clean", f, cfg.train.baseline_steps) for f in cfg.train.families]
    return out


def _residual(net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Residual parameterisation ``x_hat = y + f(y)`` of a baseline, like the Tweedie step y + phi s(y)."""
    return lambda y: y + net(y)


def _phase(cfg: Noise2ScoreConfig, ctx: RunContext, index: int) -> PhaseState:
    """The mutable training state of one phase (network, EMA, optimiser, scaler)."""
    torch.manual_seed(cfg.seed + index)  # He init of this phase's network
    kind, family, _ = phases(cfg)[index]
    net = build_net(model_config(cfg), gains(cfg)[family] if kind == "score" else 1.0).to(ctx.device)
    return PhaseState(net, torch.optim.Adam(net.parameters(), lr=cfg.train.lr, betas=(0.9, 0.999)), ctx.use_amp)


def train(cfg: Noise2ScoreConfig, ctx: RunContext) -> None:
    """Train (or resume) every phase, then export the score networks and the baselines."""
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    plan = phases(cfg)
    ends = [sum(s for *_, s in plan[: i + 1]) for i in range(len(plan))]
    total = ends[-1]
    ckpt = Checkpointer(ctx.checkpoint_dir, config_hash(cfg, exclude={"device"}))
    snapshot = cfg.model_dump(mode="json")
    run = start_phased_run(ckpt, cfg.seed, total, ctx.log, "noise2score")
    gen, first_step, done, history, resumed = run.generator, run.first_step, run.done, run.history, run.resumed

    images = load_train(ctx.data_dir)
    sa = t.sigma_a
    phase_idx = next((i for i, e in enumerate(ends) if first_step < e), len(plan))
    current = None
    if phase_idx < len(plan):
        current = _phase(cfg, ctx, phase_idx)
        if resumed is not None and resumed["state"]["current"]:
            current.load(resumed["state"]["current"])
    running: list[float] = []
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if ctx.use_amp else contextlib.nullcontext

    for step in ctx.progress(range(first_step, total), total=total, desc="noise2score train", initial=first_step):
        assert current is not None  # step < total = ends[-1], so phase_idx < len(plan) and a phase is open
        kind, family, _ = plan[phase_idx]
        in_phase = step - (ends[phase_idx] - plan[phase_idx][2])
        x = sample_batch(images, cfg.data.patch_size, t.batch_size, cfg.data.grey_fraction, gen)
        level_range: tuple[float, float] = getattr(t.noise, family)  # NoiseRanges.<family>: (low, high)
        level = sample_level(*level_range, gen)
        y = add_noise(x, family, level, gen)
        current.net.train()
        with autocast():
            if kind == "score":
                sigma_range: tuple[float, float] = getattr(sa, family)  # SigmaA.<family>: (min, max)
                sigma_a = draw_sigma_a(
                    sa.schedule, in_phase, sa.anneal_steps, *sigma_range, sa.levels, t.batch_size, gen
                )
                loss = ardae_loss(current.net, y.to(ctx.device), sigma_a, gen, antithetic=t.antithetic)
            else:
                loss = noise2clean_loss(_residual(current.net), y.to(ctx.device), x.to(ctx.device))
        current.opt.zero_grad(set_to_none=True)
        current.scaler.scale(loss).backward()
        current.scaler.unscale_(current.opt)
        nn.utils.clip_grad_norm_(current.net.parameters(), t.grad_clip)
        current.scaler.step(current.opt)
        current.scaler.update()
        ema_update(current.ema, current.net, t.ema_decay, in_phase + 1)
        running.append(float(loss.detach()))
        if (step + 1) % t.log_every == 0 or step + 1 == ends[phase_idx]:
            key = f"loss/{kind}_{family}"
            history.setdefault(key, []).extend([float(step + 1), sum(running) / len(running)])
            ctx.logger.log_metrics({key: history[key][-1]}, step=step + 1)
            running = []
        if step + 1 == ends[phase_idx]:  # phase done: keep its EMA weights, start the next network
            done[f"{kind}/{family}"] = {k: v.cpu() for k, v in current.ema.items()}
            phase_idx += 1
            current = _phase(cfg, ctx, phase_idx) if phase_idx < len(plan) else None
        if (step + 1) % t.checkpoint_every == 0 or step + 1 == total:
            state = {
                "phase": phase_idx,
                "current": current.state() if current else {},
                "generator": gen.get_state(),
                "done": done,
                "history": history,
            }
            ckpt.save(step + 1, state, snapshot)

    _export(cfg, ctx, done)
    log_loss_figure(ctx.logger, history, "loss (AR-DAE / MSE)", "Noise2Score training")


def _export(cfg: Noise2ScoreConfig, ctx: RunContext, done: dict[str, dict[str, torch.Tensor]]) -> None:
    base = {
        "paper": "noise2score",
        "model": model_config(cfg),
        "families": list(cfg.train.families),
        "noise": cfg.train.noise.model_dump(mode="json"),
        "fd_epsilon": cfg.eval.fd_epsilon,
        "power_method": cfg.eval.power_method,
    }
    kinds = [("score", ctx.model_dir)] + ([("clean", ctx.model_root / "baseline")] if cfg.train.baseline_steps else [])
    for kind, folder in kinds:
        flat = {f"nets.{f}.{k}": v for f in cfg.train.families for k, v in done[f"{kind}/{f}"].items()}
        extra = (
            {"output": "residual"} if kind == "clean" else {"output": "score", "gains": gains(cfg)}
        )  # x_hat = y + f(y)
        export_model(folder, flat, {**base, "kind": kind, **extra})
