"""Training: the AR-DAE score network and the Noise2Clean baseline.

The run is a list of phases, ``score`` then (when ``baseline_steps``) ``clean``, trained one after
another with one global step counter; each phase trains one network over all the families.
Every random draw (batch indices, noise level, noise, sigma_a, u) comes from one torch.Generator
whose state is checkpointed with the model, the EMA, the optimiser and the AMP scaler, so a run
killed at any point and rerun resumes from its last checkpoint and ends with exactly the weights
of an uninterrupted run (CPU, same seed).

Per step, following the official code (NoiseAdaptive2Score models/*_model.py
``optimize_parameters``): draw random crops of the training photographs (``data.sample_batch``),
the step's noise family (the families in turn: one shared network, model.py), one level per
sample (log-uniform, as ``set_phi`` draws per batch; the network is told it), corrupt the clean
crops (``noise.corrupt``: grey crops get grey noise), draw sigma_a (annealed as Noise2Score's
``set_sigma``, see losses.py; for Poisson in units of zeta, as Noise2Score's Poisson_model.py works
on counts), take an Adam step on the AR-DAE loss (or, for the baseline, the supervised MSE of
D(y)), clip the gradient norm at 1, update the EMA (warm-up min(decay, (1+t)/(10+t)) of
models/ema.py). The learning rate is constant (official) or, at the CPU scale, cosine-decayed
(ours). The EMA weights are what is exported and evaluated, as in the official code.
"""

from __future__ import annotations

import contextlib
import math
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
from components.papers.noise2score.model import ScoreNet, build_net
from components.papers.noise2score.noise import corrupt, is_grey, sample_level


def model_config(cfg: Noise2ScoreConfig) -> dict[str, Any]:
    return {
        "families": list(cfg.train.families),
        "width": cfg.model.width,
        "depth": cfg.model.depth,
        "bank": list(cfg.model.bank),
    }


def phases(cfg: Noise2ScoreConfig) -> list[tuple[str, int]]:
    """``[(kind, steps)]``: the score network, then the Noise2Clean baseline when asked."""
    out: list[tuple[str, int]] = [("score", cfg.train.steps)]
    if cfg.train.baseline_steps:
        out.append(("clean", cfg.train.baseline_steps))
    return out


def learning_rate(cfg: Noise2ScoreConfig, in_phase: int, steps: int) -> float:
    """``train.lr``, constant or cosine-decayed to 0 over the phase (``train.lr_schedule``)."""
    if cfg.train.lr_schedule == "constant":
        return cfg.train.lr
    return cfg.train.lr * 0.5 * (1 + math.cos(math.pi * in_phase / steps))


def sigma_a_for(cfg: Noise2ScoreConfig, family: str, in_phase: int, levels: torch.Tensor, gen: torch.Generator):
    """sigma_a per sample ``(B,)`` (losses.draw_sigma_a), times zeta for Poisson in ``zeta`` units."""
    sa = cfg.train.sigma_a
    lo, hi = getattr(sa, family)  # SigmaA.<family>: (min, max)
    sigma = draw_sigma_a(sa.schedule, in_phase, sa.anneal_steps, lo, hi, sa.levels, len(levels), gen)
    if family == "poisson" and sa.poisson_units == "zeta":
        sigma = sigma * levels.double()
    return sigma


def _phase(cfg: Noise2ScoreConfig, ctx: RunContext, index: int) -> PhaseState:
    """The mutable training state of one phase (network, EMA, optimiser, scaler)."""
    torch.manual_seed(cfg.seed + index)  # He init of this phase's network
    net = build_net(model_config(cfg)).to(ctx.device)
    return PhaseState(net, torch.optim.Adam(net.parameters(), lr=cfg.train.lr, betas=(0.9, 0.999)), ctx.use_amp)


def train(cfg: Noise2ScoreConfig, ctx: RunContext) -> None:
    """Train (or resume) every phase, then export the score network and the baseline."""
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    plan = phases(cfg)
    ends = [sum(s for _, s in plan[: i + 1]) for i in range(len(plan))]
    total = ends[-1]
    ckpt = Checkpointer(ctx.checkpoint_dir, config_hash(cfg, exclude={"device"}))
    snapshot = cfg.model_dump(mode="json")
    run = start_phased_run(ckpt, cfg.seed, total, ctx.log, "noise2score")
    gen, first_step, done, history, resumed = run.generator, run.first_step, run.done, run.history, run.resumed

    images = load_train(ctx.data_dir)
    phase_idx = next((i for i, e in enumerate(ends) if first_step < e), len(plan))
    current = None
    if phase_idx < len(plan):
        current = _phase(cfg, ctx, phase_idx)
        if resumed is not None and resumed["state"]["current"]:
            current.load(resumed["state"]["current"])
    running: dict[str, list[float]] = {}
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if ctx.use_amp else contextlib.nullcontext

    for step in ctx.progress(range(first_step, total), total=total, desc="noise2score train", initial=first_step):
        assert current is not None  # step < total = ends[-1], so phase_idx < len(plan) and a phase is open
        kind, steps = plan[phase_idx]
        in_phase = step - (ends[phase_idx] - steps)
        family = t.families[in_phase % len(t.families)]  # the families in turn, one per step
        x = sample_batch(images, cfg.data.patch_size, t.batch_size, cfg.data.grey_fraction, gen, cfg.data.zoom)
        level_range: tuple[float, float] = getattr(t.noise, family)  # NoiseRanges.<family>: (low, high)
        levels = [sample_level(*level_range, gen) for _ in range(t.batch_size)]
        y = corrupt(x, family, levels, gen)
        lv = torch.tensor(levels, dtype=torch.float32)
        net = current.net
        assert isinstance(net, ScoreNet)
        net.train()
        for group in current.opt.param_groups:
            group["lr"] = learning_rate(cfg, in_phase, steps)
        with autocast():
            if kind == "score":
                sigma_a = sigma_a_for(cfg, family, in_phase, lv, gen)
                loss = ardae_loss(  # antithetic: z stacks the batch twice, so the levels are repeated to match
                    lambda z: net.score(z, family, lv.repeat(z.shape[0] // len(lv)).to(z.device)),  # noqa: B023
                    y.to(ctx.device),
                    sigma_a,
                    gen,
                    antithetic=t.antithetic,
                    grey=torch.tensor([is_grey(yi) for yi in y]),  # from the noisy crops: no clean image
                )
            else:
                loss = noise2clean_loss(lambda z: net.denoised(z, family, lv), y.to(ctx.device), x.to(ctx.device))  # noqa: B023
        current.opt.zero_grad(set_to_none=True)
        current.scaler.scale(loss).backward()
        current.scaler.unscale_(current.opt)
        nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
        current.scaler.step(current.opt)
        current.scaler.update()
        ema_update(current.ema, net, t.ema_decay, in_phase + 1)
        key = f"loss/{kind}_{family}"
        running.setdefault(key, []).append(float(loss.detach()))
        if (step + 1) % t.log_every == 0 or step + 1 == ends[phase_idx]:
            logged = {}
            for k, vals in running.items():
                history.setdefault(k, []).extend([float(step + 1), sum(vals) / len(vals)])
                logged[k] = history[k][-1]
            ctx.logger.log_metrics(logged, step=step + 1)
            running = {}
        if step + 1 == ends[phase_idx]:  # phase done: keep its EMA weights, start the next network
            done[kind] = {k: v.cpu() for k, v in current.ema.items()}
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
        "model": {k: v for k, v in model_config(cfg).items() if k != "families"},
        "families": list(cfg.train.families),
        "noise": cfg.train.noise.model_dump(mode="json"),
        "estimate": cfg.eval.estimate.model_dump(mode="json"),
    }
    kinds = [("score", ctx.model_dir)] + ([("clean", ctx.model_root / "baseline")] if cfg.train.baseline_steps else [])
    for kind, folder in kinds:
        flat = {f"net.{k}": v for k, v in done[kind].items()}
        # score: Tweedie's formula on net.score; clean: the supervised image estimate net.denoised
        export_model(folder, flat, {**base, "kind": kind, "output": "score" if kind == "score" else "image"})
