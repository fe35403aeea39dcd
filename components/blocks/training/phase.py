"""One training phase's mutable state, its EMA, the resume of a phased run, and its loss figure.

Shared by Noise2Score, CCDF and the switchable CycleGAN: a phase is one network trained for a number
of steps; its checkpointed state is ``{"net", "ema", "opt", "scaler"}`` (the keys their checkpoints
already use), and a run's checkpoint state holds ``generator``, ``done`` (finished phases' weights)
and ``history`` (the loss curves) beside the open phase's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


def ema_update(ema: dict[str, torch.Tensor], net: nn.Module, decay: float, updates: int) -> None:
    """EMA with the warm-up of Noise2Score's official models/ema.py: decay_t = min(decay, (1 + t) / (10 + t)).

    ``updates`` is t, the 1-based update count within the phase, so early steps forget the random
    initialisation quickly and a short CPU run is not dominated by it. Non-float buffers are copied.
    """
    decay = min(decay, (1 + updates) / (10 + updates))
    with torch.no_grad():
        for k, v in net.state_dict().items():
            if v.dtype.is_floating_point:
                ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
            else:
                ema[k].copy_(v)


class PhaseState:
    """Network, EMA of its weights, optimiser and AMP grad scaler of one phase."""

    def __init__(self, net: nn.Module, opt: torch.optim.Optimizer, use_amp: bool) -> None:
        self.net = net
        self.ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
        self.opt = opt
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    def state(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "ema": self.ema,
            "opt": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.ema = {k: v.clone() for k, v in state["ema"].items()}
        self.opt.load_state_dict(state["opt"])
        self.scaler.load_state_dict(state["scaler"])


@dataclass
class PhasedRun:
    """Where a phased training run starts: from scratch, or from its last checkpoint.

    Attributes:
        generator: the run's one torch generator (every random draw of training), restored on resume.
        first_step: the global step to continue from (0 for a fresh run).
        done: finished phases' exported weights, by phase name.
        history: loss curves, key -> flat ``[step, loss, step, loss, ...]``.
        resumed: the checkpoint resumed from (``state`` holds the open phase's state), or None.
    """

    generator: torch.Generator
    first_step: int = 0
    done: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    resumed: dict[str, Any] | None = None


def start_phased_run(ckpt: Any, seed: int, total: int, log: logging.Logger, name: str) -> PhasedRun:
    """A fresh ``PhasedRun`` seeded with ``seed``, or the one ``ckpt.latest()`` (a ``Checkpointer``) resumes."""
    run = PhasedRun(torch.Generator().manual_seed(seed))
    resumed = ckpt.latest()
    if resumed is not None:
        run.first_step = int(resumed["step"])
        run.generator.set_state(resumed["state"]["generator"])
        run.done, run.history = resumed["state"]["done"], resumed["state"]["history"]
        run.resumed = resumed
        log.info("resuming %s training from checkpoint step %d of %d", name, run.first_step, total)
    return run


def log_loss_figure(logger: Any, history: dict[str, list[float]], ylabel: str, title: str) -> None:
    """Plot ``history`` (key -> flat [step, loss, step, loss, ...]) on a log scale; log it as train_loss.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, flat in sorted(history.items()):
        ax.plot(flat[0::2], flat[1::2], label=key.removeprefix("loss/"))
    ax.set_xlabel("global step")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    logger.log_figure(fig, "train_loss.png")
    plt.close(fig)
