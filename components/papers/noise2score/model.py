"""The served model: one score network per noise family (the paper trains one per family).

``Noise2ScoreModel`` bundles the AR-DAE score networks (one U-Net per family, as the official
code trains ``Gaussian_model``, ``Poisson_model`` and ``Gamma_model`` separately) with the config
needed to rebuild them. Weights live in safetensors with keys ``<family>.<param>``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from components.blocks.nn.unet import N2NUNet, pad_to_multiple
from components.checkpoint import load_export


def build_net(model_cfg: dict[str, Any]) -> N2NUNet:
    """A U-Net from ``{"channels", "width", "depth"}``."""
    c = int(model_cfg["channels"])
    return N2NUNet(c, c, int(model_cfg["width"]), int(model_cfg["depth"]))


class FamilyNets(nn.Module):
    """One network per noise family; ``forward(y, family)`` pads and crops for any image size."""

    def __init__(self, families: list[str], model_cfg: dict[str, Any]) -> None:
        super().__init__()
        self.nets = nn.ModuleDict({f: build_net(model_cfg) for f in families})

    @property
    def families(self) -> list[str]:
        return list(self.nets.keys())

    def forward(self, y: torch.Tensor, family: str) -> torch.Tensor:
        net = self.nets[family]
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

        def fn(y: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return net(y.to(dtype), family)

        return fn


def load_family_nets(model_dir: Path) -> tuple[FamilyNets, dict[str, Any]]:
    """Rebuild ``FamilyNets`` from an exported folder (safetensors; no pickle), in eval mode."""
    config, state = load_export(model_dir)
    nets = FamilyNets(list(config["families"]), config["model"])
    nets.load_state_dict(state)
    nets.eval()
    return nets, config


def load(model_dir: Path) -> Noise2ScoreModel:
    """The contract's ``load``: the served Noise2Score model from ``models/noise2score/model``."""
    nets, config = load_family_nets(Path(model_dir))
    if config.get("paper") != "noise2score":
        raise ValueError(f"{model_dir} holds a {config.get('paper')!r} model, not noise2score")
    return Noise2ScoreModel(nets, config)
