"""The served CCDF model: the eps-network and the three feed-forward initialisers, with the schedule.

Export (safetensors, no pickle): keys ``score.<param>`` (diffusers UNet2DModel, EMA weights) and
``init.<task>.<param>`` (N2N U-Nets); ``config.json`` holds everything needed to rebuild them and
the task/sampling settings (see ``train._export``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel

from components.blocks.diffusion.schedule import alphas_cumprod
from components.blocks.diffusion.unet import build_eps_unet, eps_fn
from components.blocks.nn.unet import N2NUNet
from components.checkpoint import load_export


def build_init_net(cfg: dict[str, Any]) -> N2NUNet:
    return N2NUNet(1, 1, int(cfg["init_width"]), int(cfg["init_depth"]))


@dataclass
class CCDFModel:
    """What ``load`` returns. ``eps(x, t)`` is the eps-network; ``init_nets[task]`` the initialisers."""

    unet: UNet2DModel
    init_nets: dict[str, N2NUNet]
    abar: torch.Tensor
    config: dict[str, Any]

    @property
    def eps(self):
        return eps_fn(self.unet)

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this (both networks' poolings)."""
        return max(
            2 ** (len(self.config["unet"]["block_out_channels"]) - 1), 2 ** int(self.config["init"]["init_depth"])
        )

    def initialise(self, task: str, x_simple: torch.Tensor) -> torch.Tensor:
        """The network x0_hat = x_simple + f(x_simple) (residual), clamped to [-1, 1]."""
        if task not in self.init_nets:
            raise ValueError(f"this model has no initialiser network for {task!r}")
        with torch.no_grad():
            return (x_simple + self.init_nets[task](x_simple)).clamp(-1, 1)


def load(model_dir: Path) -> CCDFModel:
    """The contract's ``load``: rebuild from ``models/ccdf/model`` (safetensors), eval mode."""
    config, state = load_export(Path(model_dir))
    if config.get("paper") != "ccdf":
        raise ValueError(f"{model_dir} holds a {config.get('paper')!r} model, not ccdf")
    unet = build_eps_unet(config["unet"])
    unet.load_state_dict({k.removeprefix("score."): v for k, v in state.items() if k.startswith("score.")})
    unet.eval()
    nets = {}
    for task in config.get("init_tasks", []):
        net = build_init_net(config["init"])
        prefix = f"init.{task}."
        net.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
        nets[task] = net.eval()
    s = config["sampling"]
    abar = alphas_cumprod(int(s["num_train_timesteps"]), float(s["beta_start"]), float(s["beta_end"]))
    return CCDFModel(unet, nets, abar, config)
