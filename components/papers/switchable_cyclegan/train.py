"""Training: the switchable CycleGAN (one generator), then the plain two-generator CycleGAN baseline.

One step, as in the official Model.py ``optimize_parameters``: draw an unpaired batch (a from the
degraded domain A, b from the high-quality domain B), take an Adam step on the generator loss
(losses.generator_loss; discriminators frozen), then one Adam step on both discriminators
(one optimiser over D_A and D_B, as in Model.py) against real images and fakes from the image pools.

The run is two phases with one global step counter. Every random draw (batch indices, pool
decisions) comes from one torch.Generator whose state is checkpointed with the networks,
optimisers, AMP scalers and pools, so a run killed at any point and rerun ends with exactly the
weights of an uninterrupted run (CPU, same seed). A finished phase exports its generators' last
iterate (the official code has no EMA; it keeps the best validation epoch on paired data), or with
``train.ema_decay`` > 0 (the default scale) the EMA of their weights (checkpointed with the rest).
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import torch

from components.blocks.training.phase import ema_update, log_loss_figure, start_phased_run
from components.checkpoint import Checkpointer, export_model
from components.config import config_hash
from components.contract import RunContext
from components.papers.switchable_cyclegan.config import SwitchableCycleGANConfig
from components.papers.switchable_cyclegan.data import load_train
from components.papers.switchable_cyclegan.losses import generator_loss, lsgan_discriminator
from components.papers.switchable_cyclegan.model import ENHANCE_NET_ALPHA, build_discriminator, build_generator
from components.papers.switchable_cyclegan.pool import ImagePool

KINDS = ("switchable", "cyclegan")


def model_config(cfg: SwitchableCycleGANConfig) -> dict[str, Any]:
    return cfg.model.model_dump(mode="json")


class CycleState:
    """Networks, optimisers, scalers and pools of one phase (``kind`` switchable or cyclegan)."""

    def __init__(self, kind: str, cfg: SwitchableCycleGANConfig, ctx: RunContext, seed: int) -> None:
        torch.manual_seed(seed)  # PyTorch's default init of this phase's networks
        m, t = model_config(cfg), cfg.train
        self.kind = kind
        names = ["G"] if kind == "switchable" else ["G_AB", "G_BA"]
        self.gens = {n: build_generator(m, heads=kind == "switchable").to(ctx.device) for n in names}
        self.discs = {n: build_discriminator(m).to(ctx.device) for n in ("D_A", "D_B")}
        betas = (t.beta1, 0.999)
        self.opt_g = torch.optim.Adam(
            itertools.chain(*(g.parameters() for g in self.gens.values())), lr=t.lr, betas=betas
        )
        self.opt_d = torch.optim.Adam(
            itertools.chain(*(d.parameters() for d in self.discs.values())), lr=t.lr, betas=betas
        )
        self.scalers = {k: torch.amp.GradScaler("cuda", enabled=ctx.use_amp) for k in ("g", "d")}
        self.pools = {k: ImagePool(t.pool_size, t.pool_prob) for k in ("a", "b")}
        self.device = ctx.device
        # EMA of the generators' weights (``train.ema_decay`` > 0; the default scale only, see config.py)
        self.ema_decay = t.ema_decay
        self.ema = {n: {k: v.detach().clone() for k, v in g.state_dict().items()} for n, g in self.gens.items()}
        self.updates = 0  # generator updates in this phase (the EMA warm-up's t)

    def update_ema(self) -> None:
        """One EMA update of every generator (blocks.training.phase.ema_update, with its warm-up)."""
        self.updates += 1
        if self.ema_decay > 0:
            for n, g in self.gens.items():
                ema_update(self.ema[n], g, self.ema_decay, self.updates)

    def exported(self) -> dict[str, torch.Tensor]:
        """The weights a finished phase exports: the EMA when ``ema_decay`` > 0, else the last iterate."""
        if self.ema_decay > 0:
            return {f"{n}.{k}": v.detach().cpu().clone() for n, e in self.ema.items() for k, v in e.items()}
        return {f"{n}.{k}": v.detach().cpu() for n, g in self.gens.items() for k, v in g.state_dict().items()}

    def directions(self):
        """``(g_ab, g_ba)``: enhance (A -> B) and degrade (B -> A).

        Switchable: the official assignment (Model.py ``forward``: ``fake_H = netG(real_S, alpha=0.0)``,
        ``fake_S = netG(real_H, alpha=1.0)``): the plain instance-norm path enhances, the AdaIN path
        degrades. (The reverse assignment, used here before, left PSNR non-monotone in alpha; see README.)
        """
        if self.kind == "switchable":
            g = self.gens["G"]
            enhance, degrade = ENHANCE_NET_ALPHA, 1.0 - ENHANCE_NET_ALPHA
            return (lambda x: g(x, enhance)), (lambda x: g(x, degrade))
        return self.gens["G_AB"], self.gens["G_BA"]

    def state(self) -> dict[str, Any]:
        return {
            "nets": {k: v.state_dict() for k, v in {**self.gens, **self.discs}.items()},
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "pools": {k: p.state() for k, p in self.pools.items()},
            "ema": self.ema,
            "updates": self.updates,
        }

    def load(self, state: dict[str, Any]) -> None:
        for k, net in {**self.gens, **self.discs}.items():
            net.load_state_dict(state["nets"][k])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for k, s in self.scalers.items():
            s.load_state_dict(state["scalers"][k])
        for k, p in self.pools.items():
            p.load(state["pools"][k], self.device)
        self.ema = {n: {k: v.to(self.device).clone() for k, v in e.items()} for n, e in state["ema"].items()}
        self.updates = int(state["updates"])


def train_step(
    st: CycleState, a: torch.Tensor, b: torch.Tensor, cfg: SwitchableCycleGANConfig, gen: torch.Generator, amp: bool
) -> dict[str, float]:
    """One generator step and one discriminator step (Model.py ``optimize_parameters``)."""
    t = cfg.train
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if amp else contextlib.nullcontext
    for g in st.gens.values():
        g.train()
    g_ab, g_ba = st.directions()
    d_a, d_b = st.discs["D_A"], st.discs["D_B"]
    for d in (d_a, d_b):
        d.requires_grad_(False)
    with autocast():
        loss_g, parts = generator_loss(a, b, g_ab, g_ba, d_a, d_b, t.lambda_gan, t.lambda_cycle, t.lambda_identity)
    st.opt_g.zero_grad(set_to_none=True)
    st.scalers["g"].scale(loss_g).backward()
    st.scalers["g"].step(st.opt_g)
    st.scalers["g"].update()

    for d in (d_a, d_b):
        d.requires_grad_(True)
    fake_b = st.pools["b"].query(parts["fake_b"].float(), gen)
    fake_a = st.pools["a"].query(parts["fake_a"].float(), gen)
    with autocast():
        loss_d = lsgan_discriminator(d_b(b), d_b(fake_b)) + lsgan_discriminator(d_a(a), d_a(fake_a))
    st.opt_d.zero_grad(set_to_none=True)
    st.scalers["d"].scale(loss_d).backward()
    st.scalers["d"].step(st.opt_d)
    st.scalers["d"].update()
    return {
        "g": float(loss_g.detach()),
        "d": float(loss_d.detach()),
        "cycle": float(parts["cycle"]),
        "identity": float(parts["identity"]),
        "gan": float(parts["gan"]),
    }


def phases(cfg: SwitchableCycleGANConfig) -> list[tuple[str, int]]:
    out = [("switchable", cfg.train.steps)]
    return out + ([("cyclegan", cfg.train.baseline_steps)] if cfg.train.baseline_steps else [])


def train(cfg: SwitchableCycleGANConfig, ctx: RunContext) -> None:
    """Train (or resume) both phases; export the switchable generator and the baseline."""
    t = cfg.train
    plan = phases(cfg)
    ends = list(itertools.accumulate(s for _, s in plan))
    total = ends[-1]
    ckpt = Checkpointer(ctx.checkpoint_dir, config_hash(cfg, exclude={"device"}))
    snapshot = cfg.model_dump(mode="json")
    run = start_phased_run(ckpt, cfg.seed, total, ctx.log, "switchable_cyclegan")
    gen, first_step, done, history, resumed = run.generator, run.first_step, run.done, run.history, run.resumed

    data_a, data_b = load_train(ctx.data_dir)
    idx = next((i for i, e in enumerate(ends) if first_step < e), len(plan))
    current = CycleState(plan[idx][0], cfg, ctx, cfg.seed + idx) if idx < len(plan) else None
    if current is not None and resumed is not None and resumed["state"]["current"]:
        current.load(resumed["state"]["current"])
    running: dict[str, list[float]] = {}
    for step in ctx.progress(
        range(first_step, total), total=total, desc="switchable_cyclegan train", initial=first_step
    ):
        assert current is not None  # step < total = ends[-1], so idx < len(plan) and a phase is open
        ia = torch.randint(0, len(data_a), (t.batch_size,), generator=gen)
        ib = torch.randint(0, len(data_b), (t.batch_size,), generator=gen)
        losses = train_step(current, data_a[ia].to(ctx.device), data_b[ib].to(ctx.device), cfg, gen, ctx.use_amp)
        current.update_ema()
        for k, v in losses.items():
            running.setdefault(k, []).append(v)
        if (step + 1) % t.log_every == 0 or step + 1 == ends[idx]:
            logged = {}
            for k, vals in running.items():
                key = f"loss/{current.kind}_{k}"
                history.setdefault(key, []).extend([float(step + 1), sum(vals) / len(vals)])
                logged[key] = history[key][-1]
            ctx.logger.log_metrics(logged, step=step + 1)
            running = {}
        if step + 1 == ends[idx]:  # phase done: keep its generators, start the next phase
            done[current.kind] = current.exported()
            idx += 1
            current = CycleState(plan[idx][0], cfg, ctx, cfg.seed + idx) if idx < len(plan) else None
        if (step + 1) % t.checkpoint_every == 0 or step + 1 == total:
            state = {
                "current": current.state() if current else {},
                "generator": gen.get_state(),
                "done": done,
                "history": history,
            }
            ckpt.save(step + 1, state, snapshot)

    for kind, folder in (("switchable", ctx.model_dir), ("cyclegan", ctx.model_root / "baseline")):
        if kind in done:
            export_model(
                folder,
                done[kind],
                {
                    "paper": "switchable_cyclegan",
                    "kind": kind,
                    "model": model_config(cfg),
                    "enhance_net_alpha": ENHANCE_NET_ALPHA,  # model.network_alpha maps the public alpha
                    "sigma_elevational": cfg.data.sigma_elevational,
                },
            )
    log_loss_figure(
        ctx.logger,
        {k: v for k, v in history.items() if k.endswith(("_cycle", "_identity", "_d"))},
        "loss",
        "switchable CycleGAN vs CycleGAN training",
    )
