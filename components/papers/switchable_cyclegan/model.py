"""Networks: the AdaIN-switchable residual U-Net generator and the 5x5 PatchGAN discriminator.

Generator (official networks/adain.py, ``half_PolyPhase_resUnet_Adain``, used by Model.py):
polyphase (space-to-depth) downsampling, each level ``conv3-IN-ReLU`` then ``conv3-SwitchableNorm-
LeakyReLU`` (both convs switchable at the bottom), transposed-conv upsampling with skip
concatenation, a 1x1 output conv and a global residual ``out = x + f(x)``. Channels ``width * 2^k``
at level k; the first conv of a down level has half of them (the "half" of the official name).

``heads=False`` builds the same network with plain instance norm in place of the switch: the
generator of the two-generator CycleGAN baseline (same size per generator, no alpha).

Discriminator (official networks/discriminator.py, ``Discriminator2``): conv5 stride 2 +
LeakyReLU 0.2, then blocks conv5 + InstanceNorm + LeakyReLU 0.2 (the first with stride 2, the rest
stride 1, channels doubling), then conv5 to one channel (a patch map). We pad every conv by 2 so
that small CPU crops keep a patch map (the official pads by 0 / 1 on 128x128 crops).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from components.checkpoint import load_export
from components.papers.switchable_cyclegan.adain import SharedCode, SwitchableNorm


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """Polyphase pooling ``(B, C, H, W) -> (B, 4C, H/2, W/2)`` (adain.py ``subpixel_pooling``)."""
    return torch.cat([x[:, :, ::2, ::2], x[:, :, ::2, 1::2], x[:, :, 1::2, ::2], x[:, :, 1::2, 1::2]], dim=1)


class _Plain(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.InstanceNorm2d(cout), nn.ReLU())


class _Switch(nn.Module):
    """conv3 -> SwitchableNorm -> LeakyReLU (slope 0.01, nn.LeakyReLU's default as in adain.py)."""

    def __init__(self, cin: int, cout: int, code_dim: int, heads: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = SwitchableNorm(cout, code_dim, heads)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: torch.Tensor, code: torch.Tensor | None, alpha: float | torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x), code, alpha))


class Generator(nn.Module):
    """``G(x, alpha)``: ``(B, 1, H, W)`` with H, W multiples of ``2**depth`` -> ``(B, 1, H, W)``."""

    def __init__(self, width: int = 64, depth: int = 4, code_dim: int = 64, heads: bool = True) -> None:
        super().__init__()
        self.depth = depth
        ch = [width * 2**k for k in range(depth + 1)]
        self.code = SharedCode(code_dim) if heads else None
        self.inc = nn.ModuleList([_Plain(1, ch[0]), _Switch(ch[0], ch[0], code_dim, heads)])
        self.down = nn.ModuleList()
        for k in range(1, depth + 1):
            first = (
                _Switch(4 * ch[k - 1], ch[k] // 2, code_dim, heads) if k == depth else _Plain(4 * ch[k - 1], ch[k] // 2)
            )
            self.down.append(nn.ModuleList([first, _Switch(ch[k] // 2, ch[k], code_dim, heads)]))
        self.up = nn.ModuleList()
        for k in range(depth, 0, -1):
            self.up.append(
                nn.ModuleList(
                    [
                        nn.ConvTranspose2d(ch[k], ch[k - 1], 2, stride=2),
                        _Plain(2 * ch[k - 1], ch[k - 1]),
                        _Switch(ch[k - 1], ch[k - 1], code_dim, heads),
                    ]
                )
            )
        self.out = nn.Conv2d(ch[0], 1, 1)

    @staticmethod
    def _run(block: nn.Module, x: torch.Tensor, code: torch.Tensor | None, alpha: float | torch.Tensor) -> torch.Tensor:
        return block(x, code, alpha) if isinstance(block, _Switch) else block(x)

    def forward(self, x: torch.Tensor, alpha: float | torch.Tensor = 1.0) -> torch.Tensor:
        m = 2**self.depth
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(f"sides {tuple(x.shape[-2:])} must be multiples of {m}")
        code = self.code() if self.code is not None else None  # (1, code_dim), shared by every layer
        h = self.inc[1](self.inc[0](x), code, alpha)
        skips = [h]
        for pair in self.down:
            assert isinstance(pair, nn.ModuleList)  # [first, second], built in __init__
            first, second = pair
            h = self._run(first, space_to_depth(h), code, alpha)
            h = second(h, code, alpha)
            skips.append(h)
        skips.pop()
        for triple, skip in zip(self.up, reversed(skips), strict=True):
            assert isinstance(triple, nn.ModuleList)  # [upconv, plain, switch], built in __init__
            upconv, plain, switch = triple
            h = switch(plain(torch.cat([upconv(h), skip], dim=1)), code, alpha)
        return x + self.out(h)  # global residual (adain.py: output = input + x)


class Discriminator(nn.Module):
    """PatchGAN with 5x5 kernels and InstanceNorm: ``(B, 1, H, W) -> (B, 1, H/4, W/4)`` (two stride-2 convs)."""

    def __init__(self, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(1, width, 5, stride=2, padding=2), nn.LeakyReLU(0.2)]
        c = width
        for i in range(layers):
            c_out = min(width * 2 ** (i + 1), 8 * width)
            mods += [
                nn.Conv2d(c, c_out, 5, stride=2 if i == 0 else 1, padding=2),
                nn.InstanceNorm2d(c_out),
                nn.LeakyReLU(0.2),
            ]
            c = c_out
        mods.append(nn.Conv2d(c, 1, 5, padding=2))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_generator(model_cfg: dict[str, Any], heads: bool = True) -> Generator:
    return Generator(model_cfg["width"], model_cfg["depth"], model_cfg["code_dim"], heads)


def build_discriminator(model_cfg: dict[str, Any]) -> Discriminator:
    return Discriminator(model_cfg["disc_width"], model_cfg["disc_layers"])


# The switch's assignment (official Model.py ``forward``): the network's plain instance-norm path,
# alpha_net = 0, is the enhancing direction (``fake_H = netG(real_S, alpha=0.0)``), and the AdaIN
# path, alpha_net = 1, the degrading one (``fake_S = netG(real_H, alpha=1.0)``). The public alpha of
# evaluate / predict / the API keeps "1 = full enhancement": alpha_net = 1 - alpha.
ENHANCE_NET_ALPHA = 0.0


def network_alpha(alpha: float, enhance_net_alpha: float = ENHANCE_NET_ALPHA) -> float:
    """Public alpha (1 = full enhancement, 0 = the other direction) -> the network's alpha.

    ``enhance_net_alpha`` is the network alpha the export was trained to enhance with: 0 (official
    assignment, every export since it was adopted) or 1 (exports written before, which have no
    ``enhance_net_alpha`` in their config).
    """
    e = float(enhance_net_alpha)
    return e * alpha + (1.0 - e) * (1.0 - alpha)


class EnhancerModel:
    """An exported generator, ready for ``predict``: ``config`` plus the network in eval mode.

    ``kind == "switchable"``: one network ``G(x, alpha_net)``, driven through the public alpha (1 =
    full enhancement, ``network_alpha``); ``kind == "cyclegan"``: ``G_AB`` only (the enhancing
    direction of the baseline; alpha does not apply).
    """

    def __init__(self, config: dict[str, Any], nets: dict[str, Generator]) -> None:
        self.config, self.nets = config, nets
        self.kind = config["kind"]
        self.enhance_net_alpha = float(config.get("enhance_net_alpha", 1.0))  # absent: an export before the swap

    def enhance(self, x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, 1, H, W)`` at the public ``alpha`` (1 = full enhancement)."""
        with torch.inference_mode():
            if self.kind == "switchable":
                return self.nets["G"](x, network_alpha(alpha, self.enhance_net_alpha))
            return self.nets["G_AB"](x)


def load(model_dir: Path) -> EnhancerModel:
    """Rebuild an exported model from ``model.safetensors`` + ``config.json`` (no pickle)."""
    config, state = load_export(Path(model_dir))
    if config.get("paper") != "switchable_cyclegan":
        raise ValueError(f"{model_dir} is not a switchable_cyclegan export")
    names = ["G"] if config["kind"] == "switchable" else ["G_AB"]
    nets = {}
    for name in names:
        net = build_generator(config["model"], heads=config["kind"] == "switchable")
        net.load_state_dict({k.removeprefix(f"{name}."): v for k, v in state.items() if k.startswith(f"{name}.")})
        nets[name] = net.eval()
    return EnhancerModel(config, nets)
