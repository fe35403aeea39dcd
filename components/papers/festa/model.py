"""Client heads (CNN -> tokens), the server body (timm ViT Blocks) and the three task tails.

Shapes: image ``(B, 1, S, S)``; head tokens ``(B, 1 + (S/p)^2, D)`` (class token first, position
embedding added in the head, as in FeSTA's Fig. 1 where the head embeds patches); body keeps the
shape; tails: cls ``(B, 3)`` logits from the class token, sev ``(B,)`` from the class token, seg
``(B, 1, S, S)`` logits from the patch tokens (a small upsampling decoder).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from timm.models.vision_transformer import Block
from torch import nn


class Head(nn.Module):
    def __init__(self, size: int, patch: int, dim: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1), nn.GELU()]
        for _ in range(int(math.log2(patch))):
            layers += [nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU()]
        layers.append(nn.Conv2d(width, dim, 1))
        self.cnn = nn.Sequential(*layers)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 1 + (size // patch) ** 2, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.cnn(x).flatten(2).transpose(1, 2)  # (B, N, D)
        return torch.cat([self.cls.expand(len(t), -1, -1), t], 1) + self.pos


class Body(nn.Module):
    """The server's shared transformer: timm ViT ``Block``s and a final LayerNorm."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[Block(dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(t))


class ClsTail(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 3))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(t[:, 0])


class SevTail(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 1))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(t[:, 0]).squeeze(1)


class SegTail(nn.Module):
    def __init__(self, dim: int, patch: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(dim, width, 1)]
        for _ in range(int(math.log2(patch))):
            layers += [nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(width, width, 3, padding=1), nn.GELU()]
        layers.append(nn.Conv2d(width, 1, 1))
        self.dec = nn.Sequential(*layers)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        p = t[:, 1:]
        g = int(math.isqrt(p.shape[1]))
        return self.dec(p.transpose(1, 2).reshape(len(p), -1, g, g))


def model_config(cfg: Any) -> dict[str, Any]:
    m = cfg.model
    return {
        "size": cfg.data.size,
        "patch": m.patch,
        "dim": m.dim,
        "depth": m.depth,
        "num_heads": m.num_heads,
        "mlp_ratio": m.mlp_ratio,
        "head_width": m.head_width,
    }


def build_head(mc: dict[str, Any]) -> Head:
    return Head(mc["size"], mc["patch"], mc["dim"], mc["head_width"])


def build_body(mc: dict[str, Any]) -> Body:
    return Body(mc["dim"], mc["depth"], mc["num_heads"], mc["mlp_ratio"])


def build_tail(task: str, mc: dict[str, Any]) -> nn.Module:
    if task == "cls":
        return ClsTail(mc["dim"])
    if task == "sev":
        return SevTail(mc["dim"])
    return SegTail(mc["dim"], mc["patch"], mc["head_width"])


class FeSTAModel(nn.Module):
    """The exported model: one body, and per task the FedAvg-ed head and tail."""

    def __init__(self, mc: dict[str, Any], tasks: list[str]) -> None:
        super().__init__()
        self.config = mc
        self.tasks = tasks
        self.body = build_body(mc)
        self.heads = nn.ModuleDict({t: build_head(mc) for t in tasks})
        self.tails = nn.ModuleDict({t: build_tail(t, mc) for t in tasks})

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        return self.tails[task](self.body(self.heads[task](x)))


def load(model_dir: Path) -> FeSTAModel:
    """Rebuild the exported model from ``config.json`` + ``model.safetensors`` (no pickle)."""
    meta = json.loads((Path(model_dir) / "config.json").read_text())
    model = FeSTAModel(meta["model"], list(meta["tasks"]))
    model.load_state_dict(load_file(str(Path(model_dir) / "model.safetensors")))
    return model.eval()
