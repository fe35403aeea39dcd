"""The two networks of DiffuseMorph, in 2-D and 3-D, and the served model.

* Score network ``ScoreNet``: ``[M, F, x_t], t -> eps`` (official diffusion_net_{2D,3D}/unet.py:
  in_channel 3, out_channel 1). 2-D: diffusers' UNet2DModel (components.blocks.diffusion, the
  network CCDF uses); 3-D: MONAI's DiffusionModelUNet with ``spatial_dims=3`` (the same ADM-style
  U-Net: time embedding, GroupNorm residual blocks, attention at the lowest level when asked).
* Deformation network ``RegistUNet``: the official ``registUnetBlock``
  (model/deformation_net_{2D,3D}.py): a 5-level U-Net of conv-LeakyReLU(0.2) blocks (two convs a
  block in 2-D, one in 3-D, as the official files), strided downsampling, transposed-conv
  upsampling; input ``[M, eps_hat]`` (DiffuseMorph) or ``[M, F]`` (the VoxelMorph-style baseline),
  output a dense flow in pixels, channel i along spatial axis i.
* ``warp``: the spatial transformer, MONAI ``Warp`` (bilinear / trilinear, pixel units), the same
  sampler as the official Dense2DSpatialTransformer (border replicated) and
  Dense3DSpatialTransformer (zeros outside the volume).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from monai.networks.blocks import Warp
from torch import nn

from components.blocks.diffusion.schedule import alphas_cumprod
from components.blocks.diffusion.unet import build_eps_unet
from components.checkpoint import load_export

with warnings.catch_warnings():  # MONAI warns that it uses torch's grid_sample, which is what we want
    warnings.simplefilter("ignore", UserWarning)
    _WARP = {2: Warp(mode="bilinear", padding_mode="border"), 3: Warp(mode="bilinear", padding_mode="zeros")}


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image (B, C, *S)`` sampled at ``x + flow(x)``; ``flow (B, nd, *S)`` in pixels, channel i along axis i.

    ``out[b, c, x] = image[b, c, x + flow[b, :, x]]`` (linear interpolation). ``S`` is ``(H, W)``
    or ``(D, H, W)``.
    """
    return _WARP[flow.shape[1]](image, flow)


def _cr(nd: int, cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Official CRblock: conv(stride) - LeakyReLU(0.2) [- conv - LeakyReLU(0.2) in 2-D]."""
    conv = nn.Conv2d if nd == 2 else nn.Conv3d
    layers: list[nn.Module] = [conv(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.2)]
    if nd == 2:  # deformation_net_2D.CRblock has two convolutions, deformation_net_3D.CRblock one
        layers += [conv(cout, cout, 3, padding=1), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class _Up(nn.Module):
    def __init__(self, nd: int, cin: int, cr_in: int, cout: int) -> None:
        super().__init__()
        tconv = nn.ConvTranspose2d if nd == 2 else nn.ConvTranspose3d
        self.up = tconv(cin, cin, 3, padding=1, stride=2, output_padding=1)
        self.block = _cr(nd, cr_in, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([skip, self.up(x)], dim=1))


class RegistUNet(nn.Module):
    """Official registUnetBlock. ``forward([M, cond]) -> (warped (M+1)/2, flow)``; every side % 16 == 0."""

    def __init__(
        self, in_ch: int, enc: tuple[int, ...], dec: tuple[int, ...], nd: int = 2, init: str = "normal"
    ) -> None:
        super().__init__()
        self.nd = nd
        self.inconv = _cr(nd, in_ch, enc[0])
        self.down = nn.ModuleList([_cr(nd, enc[i], enc[i + 1], stride=2) for i in range(4)])
        self.up1 = _Up(nd, enc[4], enc[4] + enc[3], dec[0])
        self.up2 = _Up(nd, dec[0], dec[0] + enc[2], dec[1])
        self.up3 = _Up(nd, dec[1], dec[1] + enc[1], dec[2])
        self.keep = _cr(nd, dec[2], dec[3])
        self.up4 = _Up(nd, dec[3], dec[3] + enc[0], dec[4])
        self.out = (nn.Conv2d if nd == 2 else nn.Conv3d)(dec[4], nd, 3, padding=1)
        convs = [
            m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d))
        ]
        for m in convs:  # official init_weights(field_fn, 'normal'): N(0, 0.02), zero bias
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)  # type: ignore[arg-type]
        if init == "he":
            # He init for LeakyReLU(0.2) on every hidden conv (the output conv keeps N(0, 0.02), so the
            # untrained flow is still ~0): a variance gain of 1 a layer. N(0, 0.02) gives a gain of
            # 0.0019 * C_in a layer, about 1 at the official widths (256 - 1024) but 0.015 - 0.06 at the
            # CPU widths (8 - 32), where the field's response to the score then vanishes (see README).
            for m in convs[:-1]:
                nn.init.kaiming_normal_(m.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1 = self.inconv(x)
        x2 = self.down[0](x1)
        x3 = self.down[1](x2)
        x4 = self.down[2](x3)
        x5 = self.down[3](x4)
        h = self.up3(self.up2(self.up1(x5, x4), x3), x2)
        h = self.up4(self.keep(h), x1)
        flow = self.out(h)  # (B, nd, *S), pixels
        return warp((x[:, :1] + 1) / 2, flow), flow


class ScoreNet(nn.Module):
    """``eps_theta([M, F, x_t], t)``: ``(B, 3, *S), (B,) -> (B, 1, *S)``, a 2-D or 3-D ADM-style U-Net."""

    def __init__(self, model: dict[str, Any], dims: int, size: int) -> None:
        super().__init__()
        self.dims = dims
        blocks = tuple(int(c) for c in model["block_out_channels"])
        if dims == 2:
            cfg = {
                "channels": 1,
                "in_channels": 3,
                "out_channels": 1,
                "block_out_channels": list(blocks),
                "layers_per_block": int(model["layers_per_block"]),
                "attention": bool(model["attention"]),
                "norm_num_groups": int(model["norm_num_groups"]),
                "sample_size": size,
            }
            self.net: nn.Module = build_eps_unet(cfg)
        else:
            from monai.networks.nets import DiffusionModelUNet

            self.net = DiffusionModelUNet(
                spatial_dims=3,
                in_channels=3,
                out_channels=1,
                channels=blocks,
                num_res_blocks=int(model["layers_per_block"]),
                attention_levels=tuple([False] * (len(blocks) - 1) + [bool(model["attention"])]),
                norm_num_groups=int(model["norm_num_groups"]),
                num_head_channels=blocks[-1],
            )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.net(x, t)
        return out.sample if self.dims == 2 else out


def build(model: dict[str, Any], size: int, dims: int = 2) -> tuple[ScoreNet, RegistUNet, RegistUNet]:
    """``(score U-Net, DiffuseMorph field net, VoxelMorph-style field net)``."""
    enc, dec = tuple(model["encoder_nc"]), tuple(model["decoder_nc"])
    init = str(model.get("field_init", "normal"))
    return ScoreNet(model, dims, size), RegistUNet(2, enc, dec, dims, init), RegistUNet(2, enc, dec, dims, init)


@dataclass
class DiffuseMorphModel:
    """What ``load`` returns: the score net, both field nets, alpha_bar and the config."""

    score: ScoreNet
    field: RegistUNet
    baseline: RegistUNet
    abar: torch.Tensor
    config: dict[str, Any]

    @property
    def dims(self) -> int:
        return int(self.config.get("dims", 2))

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.score(x, t)


def export_config(cfg: Any) -> dict[str, Any]:
    """What ``config.json`` of the exported model holds (all ``load`` needs)."""
    return {
        "paper": "diffusemorph",
        "model": cfg.model.model_dump(mode="json"),
        "diffusion": cfg.diffusion.model_dump(mode="json"),
        "size": cfg.data.size,
        "depth": cfg.data.depth,
        "dims": cfg.data.dims,
    }


def load(model_dir: Path) -> DiffuseMorphModel:
    """The contract's ``load``: safetensors + config.json (no pickle), eval mode."""
    config, state = load_export(Path(model_dir))
    if config.get("paper") != "diffusemorph":
        raise ValueError(f"{model_dir} holds a {config.get('paper')!r} model, not diffusemorph")
    score, field, base = build(config["model"], int(config["size"]), int(config.get("dims", 2)))
    for prefix, net in (("score.", score), ("field.", field), ("baseline.", base)):
        net.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
        net.eval()
    d = config["diffusion"]
    abar = alphas_cumprod(int(d["num_train_timesteps"]), float(d["beta_start"]), float(d["beta_end"]))
    return DiffuseMorphModel(score, field, base, abar, config)
