"""Networks of the three methods and the served model (EBCLR encoder + linear probe).

* EBCLR: ResNet-18 without batch norm, LeakyReLU(0.2) (configs_ebclr ``net``: use_bn false, act lrelu).
* SimCLR / MoCo: the same ResNet-18 width with batch norm and ReLU (configs_simclr/moco ``net``).
* Projection head: Linear(D, D) -> act -> Linear(D, proj_dim) (libs/models.py ``MLP``), D = 8 * width.

The served ``EBCLRModel`` is the EBCLR encoder (the representation the probe and k-NN use, as in
the paper's evaluation) plus the linear probe fitted on frozen features of the training split.
Exported as safetensors (``encoder.*``, ``probe.*``) + config.json; no pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from components.blocks.metrics.probe import LinearProbe
from components.blocks.nn.resnet import Activation, Norm, ResNet, projection_head, resnet18
from components.checkpoint import export_model, load_export

ARCH: dict[str, tuple[Norm, Activation]] = {
    "ebclr": ("none", "lrelu"),
    "ebclr_lambda2_0": ("none", "lrelu"),
    "simclr": ("batch", "relu"),
    "moco": ("batch", "relu"),
}


def build_encoder(method: str, in_channels: int, width: int) -> ResNet:
    """The ResNet-18 of ``method`` (norm and activation from ``ARCH``)."""
    norm, act = ARCH[method]
    return resnet18(in_channels, width, norm, act)


class EncoderHead(nn.Module):
    """``proj(enc(x))``: ``(N, C, S, S) -> (N, proj_dim)``; ``features(x)`` is ``enc(x)`` ``(N, 8 * width)``."""

    def __init__(self, method: str, in_channels: int, width: int, proj_dim: int) -> None:
        super().__init__()
        self.encoder = build_encoder(method, in_channels, width)
        self.head = projection_head(self.encoder.feature_dim, proj_dim, ARCH[method][1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


@dataclass
class EBCLRModel:
    """What ``load`` returns: the frozen encoder, the probe and the exported config."""

    encoder: ResNet
    probe: LinearProbe
    config: dict[str, Any]

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def in_channels(self) -> int:
        return int(self.config["in_channels"])

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.config["classes"]]


def export(directory: Path, encoder: nn.Module, probe: LinearProbe, config: dict[str, Any]) -> Path:
    """Write the served model: ``encoder.*`` weights, ``probe.{mean,std,weight,bias}``, config.json."""
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update({f"probe.{k}": getattr(probe, k) for k in ("mean", "std", "weight", "bias")})
    return export_model(directory, state, config)


def load(model_dir: Path) -> EBCLRModel:
    """The contract's ``load``: rebuild the encoder and probe from ``models/ebclr/model`` (safetensors)."""
    config, state = load_export(Path(model_dir))
    if config.get("paper") != "ebclr":
        raise ValueError(f"{model_dir} holds a {config.get('paper')!r} model, not ebclr")
    encoder = build_encoder(config["method"], int(config["in_channels"]), int(config["width"]))
    encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")})
    encoder.eval()
    probe = LinearProbe(*(state[f"probe.{k}"] for k in ("mean", "std", "weight", "bias")))
    return EBCLRModel(encoder, probe, config)
