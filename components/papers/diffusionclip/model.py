"""The served DiffusionCLIP model: the original DDPM and one fine-tuned copy per target text.

Export (safetensors, no pickle): ``original.<param>`` (the EMA weights of the trained DDPM) and
``ft.<target>.<param>`` (each fine-tuned model); ``config.json`` holds the U-Net config, the
schedule, the targets and the sampling defaults (see ``train._export``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel

from components.blocks.diffusion.loss import EpsModel
from components.blocks.diffusion.schedule import alphas_cumprod
from components.blocks.diffusion.unet import build_eps_unet, eps_fn
from components.checkpoint import load_export
from components.papers.diffusionclip.sampling import ratio_eps


@dataclass
class DiffusionCLIPModel:
    """What ``load`` returns: ``eps(name)`` of the original (None) or a fine-tuned model."""

    original: UNet2DModel
    finetuned: dict[str, UNet2DModel]
    abar: torch.Tensor
    config: dict[str, Any]

    @property
    def size(self) -> int:
        return int(self.config["size"])

    @property
    def targets(self) -> dict[str, dict[str, Any]]:
        return {t["name"]: t for t in self.config["targets"]}

    def eps(self, name: str | None = None) -> EpsModel:
        return eps_fn(self.original if name is None else self.finetuned[name])

    def edit_eps(self, target: str, strength: float) -> EpsModel:
        """model_ratio interpolation of the original and the ``target`` model."""
        return ratio_eps(self.eps(), self.eps(target), strength)

    def to(self, device: torch.device) -> DiffusionCLIPModel:
        self.original.to(device)
        for net in self.finetuned.values():
            net.to(device)
        return self


def unet_from(state: dict[str, torch.Tensor], prefix: str, cfg: dict[str, Any]) -> UNet2DModel:
    net = build_eps_unet(cfg)
    net.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def load(model_dir: Path) -> DiffusionCLIPModel:
    """The contract's ``load``: rebuild from ``models/diffusionclip/model`` (safetensors), eval mode."""
    config, state = load_export(Path(model_dir))
    if config.get("paper") != "diffusionclip":
        raise ValueError(f"{model_dir} holds a {config.get('paper')!r} model, not diffusionclip")
    original = unet_from(state, "original.", config["unet"])
    finetuned = {t["name"]: unet_from(state, f"ft.{t['name']}.", config["unet"]) for t in config["targets"]}
    d = config["diffusion"]
    abar = alphas_cumprod(int(d["num_train_timesteps"]), float(d["beta_start"]), float(d["beta_end"]))
    return DiffusionCLIPModel(original, finetuned, abar, config)
