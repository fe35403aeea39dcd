"""The eps-network: diffusers' ``UNet2DModel`` (the ADM-style U-Net of Ho et al. / Dhariwal &
Nichol), built from a small plain-dict config so it can be exported as JSON + safetensors."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import UNet2DModel


def build_eps_unet(cfg: dict[str, Any]) -> UNet2DModel:
    """A UNet2DModel from ``{"channels", "block_out_channels", "layers_per_block", "attention",
    "norm_num_groups", "sample_size"}``; ``attention`` adds self-attention at the lowest level.

    Input sizes must be multiples of ``2 ** (len(block_out_channels) - 1)``.
    """
    blocks = tuple(int(c) for c in cfg["block_out_channels"])
    n = len(blocks)
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    if cfg.get("attention", False):
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=int(cfg.get("sample_size", 32)),
        in_channels=int(cfg.get("in_channels", cfg["channels"])),  # conditional nets (DiffuseMorph: 3 -> 1)
        out_channels=int(cfg.get("out_channels", cfg["channels"])),
        block_out_channels=blocks,
        layers_per_block=int(cfg["layers_per_block"]),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=int(cfg.get("norm_num_groups", 8)),
    )


def eps_fn(unet: UNet2DModel):
    """``(x_t (B, C, H, W), t (B,)) -> eps_hat``: the callable the loss and samplers take."""

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return unet(x, t).sample

    return fn
