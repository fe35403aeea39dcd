"""The two networks of DiffuseMorph and the served model.

* Score network: diffusers' UNet2DModel (components.blocks.diffusion) on ``[M, F, x_t]`` -> eps
  (official diffusion_net_2D/unet.py: in_channel 3, out_channel 1).
* Deformation network: the official ``registUnetBlock`` (model/deformation_net_2D.py): a 5-level
  U-Net of conv-LeakyReLU(0.2) blocks with strided downsampling and transposed-conv upsampling,
  input ``[M, eps_hat]`` (DiffuseMorph) or ``[M, F]`` (the VoxelMorph-style baseline), output a dense
  flow in pixels (channel 0 = rows, 1 = columns); the spatial transformer warps (M + 1) / 2
  bilinearly with border replication (MONAI ``Warp``, the same sampler as the official
  Dense2DSpatialTransformer: pixel units, replicated border).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from monai.networks.blocks import Warp
from torch import nn

from components.blocks.diffusion.schedule import alphas_cumprod
from components.blocks.diffusion.unet import build_eps_unet
from components.checkpoint import load_export

_WARP = Warp(mode="bilinear", padding_mode="border")


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image (B, C, H, W)`` sampled at ``x + flow(x)`` (flow ``(B, 2, H, W)`` in pixels, (rows, cols))."""
    return _WARP(image, flow)


def _cr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Official CRblock: conv(stride) - LeakyReLU(0.2) - conv - LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.LeakyReLU(0.2),
    )


class _Up(nn.Module):
    def __init__(self, cin: int, cr_in: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin, 3, padding=1, stride=2, output_padding=1)
        self.block = _cr(cr_in, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([skip, self.up(x)], dim=1))


class RegistUNet(nn.Module):
    """Official registUnetBlock (2-D). ``forward([M, cond]) -> (warped (M+1)/2, flow)``; sides % 16 == 0."""

    def __init__(self, in_ch: int, enc: tuple[int, ...], dec: tuple[int, ...]) -> None:
        super().__init__()
        self.inconv = _cr(in_ch, enc[0])
        self.down = nn.ModuleList([_cr(enc[i], enc[i + 1], stride=2) for i in range(4)])
        self.up1 = _Up(enc[4], enc[4] + enc[3], dec[0])
        self.up2 = _Up(dec[0], dec[0] + enc[2], dec[1])
        self.up3 = _Up(dec[1], dec[1] + enc[1], dec[2])
        self.keep = _cr(dec[2], dec[3])
        self.up4 = _Up(dec[3], dec[3] + enc[0], dec[4])
        self.out = nn.Conv2d(dec[4], 2, 3, padding=1)
        for m in self.modules():  # official init_weights(field_fn, 'normal'): N(0, 0.02), zero bias
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1 = self.inconv(x)
        x2 = self.down[0](x1)
        x3 = self.down[1](x2)
        x4 = self.down[2](x3)
        x5 = self.down[3](x4)
        h = self.up3(self.up2(self.up1(x5, x4), x3), x2)
        h = self.up4(self.keep(h), x1)
        flow = self.out(h)
        return warp((x[:, :1] + 1) / 2, flow), flow


def unet_config(model: Any, size: int) -> dict[str, Any]:
    return {
        "channels": 1,
        "in_channels": 3,
        "out_channels": 1,
        "block_out_channels": list(model["block_out_channels"]),
        "layers_per_block": int(model["layers_per_block"]),
        "attention": bool(model["attention"]),
        "norm_num_groups": int(model["norm_num_groups"]),
        "sample_size": size,
    }


def build(model: dict[str, Any], size: int) -> tuple[UNet2DModel, RegistUNet, RegistUNet]:
    """``(score U-Net, DiffuseMorph field net, VoxelMorph-style field net)``."""
    enc, dec = tuple(model["encoder_nc"]), tuple(model["decoder_nc"])
    return build_eps_unet(unet_config(model, size)), RegistUNet(2, enc, dec), RegistUNet(2, enc, dec)


@dataclass
class DiffuseMorphModel:
    """What ``load`` returns: the score net, both field nets, alpha_bar and the config."""

    score: UNet2DModel
    field: RegistUNet
    baseline: RegistUNet
    abar: torch.Tensor
    config: dict[str, Any]

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.score(x, t).sample


def load(model_dir: Path) -> DiffuseMorphModel:
    """The contract's ``load``: safetensors + config.json (no pickle), eval mode."""
    config, state = load_export(Path(model_dir))
    if config.get("paper") != "diffusemorph":
        raise ValueError(f"{model_dir} holds a {config.get('paper')!r} model, not diffusemorph")
    score, field, base = build(config["model"], int(config["size"]))
    for prefix, net in (("score.", score), ("field.", field), ("baseline.", base)):
        net.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
        net.eval()
    d = config["diffusion"]
    abar = alphas_cumprod(int(d["num_train_timesteps"]), float(d["beta_start"]), float(d["beta_end"]))
    return DiffuseMorphModel(score, field, base, abar, config)
