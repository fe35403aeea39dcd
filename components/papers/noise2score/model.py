"""The score network and the served model.

**The score network (ours: conditioned, shared, written through a denoised image).** The official
code trains one unconditioned U-Net per family whose output is the score l'(y). Here one U-Net
serves the three families and is told the noise model: its input is the noisy image, a per-pixel
noise standard-deviation map sqrt(phi V(b)) (b: the mean of the blurs below, V(b) = 1, b, b^2 for Gaussian,
Poisson, Gamma; the FFDNet noise-level map made signal-dependent) and a one-hot family code. Its
output is an image estimate: a per-pixel mixture of fixed Gaussian blurs (widths ``bank``; the
U-Net predicts the mixing weights, as kernel-predicting denoisers do) plus a correction,

    D(y) = sum_k softmax(U_w(y, map, family))_k blur_k(y) + U_r(y, map, family)

and the score is the family's likelihood score at that image (``tweedie.likelihood_score``):

    s(y) = d/dy log p(y | x) at x = D(y):  (D - y) / sigma^2,  (log D - log(y + zeta/2)) / zeta,  (k - 1) / y - k / D.

Every score has exactly one such D (Tweedie's formula inverts it), so the AR-DAE loss and its
optimum are the paper's; what changes is what the network must learn. Written as a raw output,
the score's large part -y / (phi V(y)) (the noise's own curvature) must be learnt by the weights,
and the AR-DAE gradient of that identity part is pure noise at small sigma_a. Written through D,
that part is fixed and the network learns how much to smooth where, and the correction, with
the mean of the blurs as its starting point (zero-initialised last layer). Side runs
on the held-out photographs (Gaussian 25, 150 AR-DAE steps): -1.69 dB against the oracle Gaussian
filter with the raw output, -0.42 dB through D = blur(y) + U (one 1-px blur).

Weights live in safetensors (keys ``net.<param>``) beside the config needed to rebuild them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from components.blocks.nn.unet import N2NUNet, pad_to_multiple
from components.checkpoint import load_export
from components.papers.noise2score import tweedie
from components.papers.noise2score.noise import FAMILIES, TWEEDIE_POWER

MAP_SCALE = 5.0  # the std map enters the network as 5 sqrt(phi V): about 0.2 .. 1.6 over the training ranges
_MAP_FLOOR = 0.02  # b is floored here in V(b), so the map of a black pixel is not 0 for Poisson / Gamma


def gaussian_blur(y: torch.Tensor, width: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with standard deviation ``width`` px (reflect pad)."""
    if width <= 0:
        return y
    r = max(1, int(3 * width + 0.5))
    t = torch.arange(-r, r + 1, dtype=y.dtype, device=y.device)
    k = torch.exp(-0.5 * (t / width) ** 2)
    k = k / k.sum()
    c = y.shape[1]
    mode = "reflect" if min(y.shape[-2:]) > r else "replicate"
    z = F.pad(y, (r, r, r, r), mode=mode)
    z = F.conv2d(z, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(z, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def as_levels(level: float | torch.Tensor, batch: int, dtype: torch.dtype) -> torch.Tensor:
    """One level per sample, ``(B, 1, 1, 1)``."""
    t = torch.as_tensor(level, dtype=dtype).reshape(-1)
    if t.numel() not in (1, batch):
        raise ValueError(f"expected 1 or {batch} levels, got {t.numel()}")
    return t.expand(batch).reshape(batch, 1, 1, 1)


def noise_std_map(b: torch.Tensor, family: str, level: torch.Tensor) -> torch.Tensor:
    """sqrt(phi V(b)): the noise standard deviation at intensity b (``level`` ``(B, 1, 1, 1)``)."""
    phi = dispersion_tensor(family, level)
    p = TWEEDIE_POWER[family]
    return (phi * b.clamp(_MAP_FLOOR, 1.0) ** p).sqrt() if p else phi.sqrt().expand_as(b)


def dispersion_tensor(family: str, level: torch.Tensor) -> torch.Tensor:
    """``noise.dispersion`` elementwise on a tensor of levels."""
    if family == "gaussian":
        return (level / 255.0) ** 2
    return level if family == "poisson" else 1.0 / level


class ScoreNet(nn.Module):
    """The conditioned score network of the module doc: ``denoised`` D(y) and ``score`` l'(y).

    Args:
        families: the noise families it serves (their order fixes the one-hot code).
        width, depth: the U-Net's (``blocks.nn.unet.N2NUNet``).
        bank: widths in px of the fixed Gaussian blurs (0: none) that D mixes per pixel, with weights
            the U-Net predicts (a softmax over its last ``len(bank)`` output channels), before its
            3-channel correction is added.
    """

    def __init__(self, families: list[str], width: int, depth: int, bank: tuple[float, ...]) -> None:
        super().__init__()
        if not bank:
            raise ValueError("the blur bank needs at least one width")
        self.families = list(families)
        self.bank = tuple(float(b) for b in bank)
        self.unet = N2NUNet(3 + 1 + len(self.families), 3 + len(self.bank), width, depth)
        last = self.unet.head[-1]
        assert isinstance(last, nn.Conv2d)  # N2NUNet's head ends in its linear output convolution
        nn.init.zeros_(last.weight)  # D = the bank's mean blur at initialisation
        assert last.bias is not None
        nn.init.zeros_(last.bias)

    def denoised(self, y: torch.Tensor, family: str, level: float | torch.Tensor) -> torch.Tensor:
        """D(y) for ``y`` ``(B, 3, H, W)`` (any H, W) of noise ``family`` at ``level`` (float or ``(B,)``)."""
        if family not in self.families:
            raise ValueError(f"this network has no {family!r} noise (it has {', '.join(self.families)})")
        lv = as_levels(level, y.shape[0], y.dtype).to(y.device)
        blurs = torch.stack([gaussian_blur(y, b) for b in self.bank], dim=1)  # (B, K, C, H, W)
        code = torch.zeros(y.shape[0], len(self.families), *y.shape[-2:], dtype=y.dtype, device=y.device)
        code[:, self.families.index(family)] = 1
        std = noise_std_map(blurs.mean(1), family, lv).mean(1, keepdim=True)
        padded, (h, w) = pad_to_multiple(torch.cat([y, MAP_SCALE * std, code], dim=1), self.unet.multiple)
        out = self.unet(padded)[..., :h, :w]
        weights = torch.softmax(out[:, 3:], dim=1).unsqueeze(2)  # (B, K, 1, H, W): per-pixel mixture
        return (weights * blurs).sum(1) + out[:, :3]

    def score(self, y: torch.Tensor, family: str, level: float | torch.Tensor) -> torch.Tensor:
        """l'(y) = likelihood_score(y, D(y)) (module doc); same shape as ``y``."""
        lv = as_levels(level, y.shape[0], y.dtype).to(y.device)
        return tweedie.likelihood_score(y, self.denoised(y, family, lv), family, lv)


def build_net(model_cfg: dict[str, Any]) -> ScoreNet:
    """A ``ScoreNet`` from ``{"families", "width", "depth", "bank"}``."""
    return ScoreNet(
        list(model_cfg["families"]), int(model_cfg["width"]), int(model_cfg["depth"]), tuple(model_cfg["bank"])
    )


@dataclass
class Noise2ScoreModel:
    """What ``load`` returns: the score network (float32, eval mode) and the exported config."""

    net: ScoreNet
    config: dict[str, Any]
    _net64: ScoreNet | None = None

    @property
    def families(self) -> list[str]:
        return self.net.families

    def _pick(self, float64: bool) -> tuple[ScoreNet, torch.dtype]:
        """The network in the asked precision; the float64 copy is made once and kept, so concurrent
        callers never see a module whose dtype is changing under them."""
        if not float64:
            return self.net, torch.float32
        if self._net64 is None:
            self._net64 = copy.deepcopy(self.net).double().eval()
        return self._net64, torch.float64

    def score(self, y: torch.Tensor, family: str, level: float | torch.Tensor, float64: bool = False) -> torch.Tensor:
        """l'(y) of the network for noise ``family`` at ``level``."""
        net, dtype = self._pick(float64)
        with torch.inference_mode():
            return net.score(y.to(dtype), family, level)

    def denoise(self, y: torch.Tensor, family: str, level: float) -> torch.Tensor:
        """Tweedie's closed form on the network's score: the paper's denoiser (tweedie.denoise)."""
        return tweedie.denoise(y, self.score(y, family, level), family, level)


def load_score_net(model_dir: Path) -> tuple[ScoreNet, dict[str, Any]]:
    """Rebuild the ``ScoreNet`` of an exported folder (safetensors; no pickle), in eval mode."""
    config, state = load_export(model_dir)
    net = build_net({**config["model"], "families": config["families"]})
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    net.eval()
    return net, config


def load(model_dir: Path) -> Noise2ScoreModel:
    """The contract's ``load``: the served Noise2Score model from ``models/noise2score/model``."""
    net, config = load_score_net(Path(model_dir))
    if config.get("paper") != "noise2score":
        raise ValueError(f"{model_dir} holds a {config.get('paper')!r} model, not noise2score")
    if not set(net.families) <= set(FAMILIES):
        raise ValueError(f"unknown families {net.families} in {model_dir}")
    return Noise2ScoreModel(net, config)
