"""The served model: one score network per noise family (the paper trains one per family).

``Noise2ScoreModel`` bundles the AR-DAE score networks (one U-Net per family, as the official
code trains ``Gaussian_model``, ``Poisson_model`` and ``Gamma_model`` separately) with the config
needed to rebuild them. Weights live in safetensors with keys ``<family>.<param>``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from components.blocks.nn.unet import N2NUNet, pad_to_multiple
from components.checkpoint import load_export
from components.papers.noise2score.noise import TWEEDIE_POWER, dispersion


class GainNet(nn.Module):
    """A U-Net whose output is multiplied by a fixed ``gain``: s(y) = gain * f(y).

    The score of noisy photographs is about -(y - E[x|y]) / (phi V(y)), some 100 times larger than
    what a freshly initialised network outputs; the official run (lr 1e-5, 200k steps) grows its
    weights that far, a short CPU run cannot. A constant gain 1 / (phi_ref V(1/2)), phi_ref at the
    geometric centre of the family's training range, puts the score at O(1) network outputs. It
    is a fixed reparameterisation of the network (ours), not a change of loss or optimum.
    """

    def __init__(self, net: N2NUNet, gain: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.gain = float(gain)

    @property
    def multiple(self) -> int:
        return self.net.multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * self.net(x)


def score_gain(family: str, noise_range: tuple[float, float]) -> float:
    """1 / (phi_ref V(1/2)) with phi_ref the dispersion at the geometric mean of ``noise_range``."""
    ref = math.sqrt(noise_range[0] * noise_range[1])
    return 1.0 / (dispersion(family, ref) * 0.5 ** TWEEDIE_POWER[family])


def build_net(model_cfg: dict[str, Any], gain: float = 1.0) -> GainNet:
    """A U-Net from ``{"channels", "width", "depth"}`` with output ``gain``."""
    c = int(model_cfg["channels"])
    return GainNet(N2NUNet(c, c, int(model_cfg["width"]), int(model_cfg["depth"])), gain)


class FamilyNets(nn.Module):
    """One network per noise family; ``forward(y, family)`` pads and crops for any image size."""

    def __init__(self, families: list[str], model_cfg: dict[str, Any], gains: dict[str, float] | None = None) -> None:
        super().__init__()
        gains = gains or {}
        self.nets = nn.ModuleDict({f: build_net(model_cfg, gains.get(f, 1.0)) for f in families})

    @property
    def families(self) -> list[str]:
        return list(self.nets.keys())

    def forward(self, y: torch.Tensor, family: str) -> torch.Tensor:
        net = self.nets[family]
        assert isinstance(net, GainNet)  # every entry comes from build_net
        padded, (h, w) = pad_to_multiple(y, net.multiple)
        return net(padded)[..., :h, :w]


@dataclass
class Noise2ScoreModel:
    """What ``load`` returns: the score networks (float32) and the exported config."""

    score: FamilyNets
    config: dict[str, Any]
    _score64: FamilyNets | None = None

    @property
    def families(self) -> list[str]:
        return self.score.families

    def score_fn(self, family: str, float64: bool = False):
        """``y -> l'(y)`` of one family's network; ``float64`` for the finite-difference estimator.

        The float64 copy is made once and kept, so concurrent callers never see a module whose
        dtype is changing under them.
        """
        if float64 and self._score64 is None:
            self._score64 = copy.deepcopy(self.score).double().eval()
        net, dtype = (self._score64, torch.float64) if float64 else (self.score, torch.float32)
        assert net is not None  # the float64 copy was made just above

        def fn(y: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return net(y.to(dtype), family)

        return fn


def load_family_nets(model_dir: Path) -> tuple[FamilyNets, dict[str, Any]]:
    """Rebuild ``FamilyNets`` from an exported folder (safetensors; no pickle), in eval mode."""
    config, state = load_export(model_dir)
    nets = FamilyNets(list(config["families"]), config["model"], config.get("gains"))
    nets.load_state_dict(state)
    nets.eval()
    return nets, config


def load(model_dir: Path) -> Noise2ScoreModel:
    """The contract's ``load``: the served Noise2Score model from ``models/noise2score/model``."""
    nets, config = load_family_nets(Path(model_dir))
    if config.get("paper") != "noise2score":
        raise ValueError(f"{model_dir} holds a {config.get('paper')!r} model, not noise2score")
    return Noise2ScoreModel(nets, config)
