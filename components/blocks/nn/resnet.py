"""CIFAR-style ResNet-18 (3x3 stem, no max-pool) with configurable width, norm and activation.

The layout of the ResNets used by contrastive-learning papers on 32x32 images (kuangliu's
pytorch-cifar, and 1202kbs/EBCLR libs/resnets.py ``ResNet``/``BasicBlock``): a 3x3 stem at full
resolution, four stages of BasicBlocks (channels w, 2w, 4w, 8w; strides 1, 2, 2, 2), global average
pooling. ``width=64`` gives the usual 512-d feature. Energy-based models use no batch norm (the
energy of one sample must not depend on the rest of the batch), hence ``norm="none"`` and convs with
biases; SimCLR/MoCo use batch norm (then the convs lose their bias, as in the official code).

Shapes: ``(N, in_channels, H, W) -> (N, 8 * width)`` for any H, W >= 8.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Norm = Literal["none", "batch"]
Activation = Literal["lrelu", "relu"]


def make_activation(name: Activation) -> nn.Module:
    """LeakyReLU(0.2) (EBCLR, libs/net.py ``get_act``) or ReLU (the SimCLR/MoCo configs)."""
    if name == "lrelu":
        return nn.LeakyReLU(0.2)
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown activation {name!r}; expected 'lrelu' or 'relu'")


def _conv(cin: int, cout: int, k: int, stride: int, norm: Norm) -> nn.Module:
    conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=norm == "none")
    return nn.Sequential(conv, nn.BatchNorm2d(cout)) if norm == "batch" else conv


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut: ``act(conv2(act(conv1 x)) + sc(x))``."""

    def __init__(self, cin: int, cout: int, stride: int, norm: Norm, act: Activation) -> None:
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, stride, norm)
        self.conv2 = _conv(cout, cout, 3, 1, norm)
        self.act = make_activation(act)
        self.shortcut = _conv(cin, cout, 1, stride, norm) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.act(self.conv1(x)))
        return self.act(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet; ``blocks=(2, 2, 2, 2)`` is ResNet-18.

    Args:
        in_channels: 1 (MNIST-like) or 3 (CIFAR).
        width: channels of the first stage (64 in the paper; 8-16 at CPU scale).
        norm: "none" (EBCLR) or "batch" (SimCLR, MoCo).
        act: "lrelu" (LeakyReLU 0.2) or "relu".
        blocks: BasicBlocks per stage.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        norm: Norm = "none",
        act: Activation = "lrelu",
        blocks: tuple[int, ...] = (2, 2, 2, 2),
    ) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        self.in_channels = in_channels
        self.stem = _conv(in_channels, width, 3, 1, norm)
        self.act = make_activation(act)
        stages, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            layers = [
                BasicBlock(cin if j == 0 else cout, cout, (1 if i == 0 else 2) if j == 0 else 1, norm, act)
                for j in range(n)
            ]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.feature_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, feature_dim)``."""
        out = self.stages(self.act(self.stem(x)))
        return out.mean(dim=(2, 3))


def resnet18(in_channels: int = 3, width: int = 64, norm: Norm = "none", act: Activation = "lrelu") -> ResNet:
    """The CIFAR ResNet-18 (feature dim ``8 * width``: 512 at width 64)."""
    return ResNet(in_channels, width, norm, act, (2, 2, 2, 2))


def projection_head(in_dim: int, out_dim: int, act: Activation = "lrelu", hidden: int | None = None) -> nn.Sequential:
    """The two-layer MLP projection ``in -> hidden -> out`` (EBCLR libs/models.py ``MLP``: 512 -> 512 -> 128)."""
    hidden = hidden or in_dim
    return nn.Sequential(nn.Linear(in_dim, hidden), make_activation(act), nn.Linear(hidden, out_dim))
