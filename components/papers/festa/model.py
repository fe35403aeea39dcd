"""Client heads (CNN -> tokens), the server body (timm ViT Blocks) and the three task tails.

Shapes: image ``(B, 1, S, S)``; head tokens ``(B, 1 + (S/p)^2, D)`` (class token first, position
embedding added in the head, as in FeSTA's Fig. 1 where the head embeds patches); body keeps the
shape; tails: cls ``(B, 3)`` logits from the class token, sev ``(B,)`` from the class token, seg
``(B, 1, S, S)`` logits from the patch tokens (a small upsampling decoder).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file
from torch import nn


class Head(nn.Module):
    def __init__(self, size: int, patch: int, dim: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1), nn.GELU()]
        for _ in range(int(math.log2(patch))):
            layers += [nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU()]
        layers.append(nn.Conv2d(width, dim, 1))
        self.cnn = nn.Sequential(*layers)
        # He initialisation, zero biases, and a LayerNorm of the tokens: with PyTorch's default conv
        # initialisation the five-layer CNN's output was ~99 % bias (its image-dependent part ~1e-3),
        # and the severity regressor, trained on it, collapsed to predicting the mean.
        for m in self.cnn:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                assert m.bias is not None
                nn.init.zeros_(m.bias)
        self.norm = nn.LayerNorm(dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 1 + (size // patch) ** 2, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Each image standardised on its own (zero mean, unit variance): a hospital's contrast and
        # offset (data.hospital_shift) leave no trace the network could mistake for the label.
        x = (x - x.mean((1, 2, 3), keepdim=True)) / (x.std((1, 2, 3), keepdim=True) + 1e-3)
        t = self.norm(self.cnn(x).flatten(2).transpose(1, 2))  # (B, N, D)
        return torch.cat([self.cls.expand(len(t), -1, -1), t], 1) + self.pos


class Body(nn.Module):
    """The server's shared transformer: timm ViT ``Block``s and a final LayerNorm."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float) -> None:
        from timm.models.vision_transformer import Block  # ~3 CPU-s to import: the clients never need it

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
    """Severity from the patch tokens (the paper's severity tail reads the patch tokens too, to map
    them onto its lung-region score array); here one score: an MLP on each token, then the mean."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 1))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(t[:, 1:]).mean(1).squeeze(1)  # (B, N, D) -> (B,)


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


TASK_INDEX = {"cls": 0, "sev": 1, "seg": 2}
M = TypeVar("M", bound=nn.Module)


def seeded(seed: int | None, build: Callable[[], M]) -> M:
    """``build()`` with torch's global generator at ``seed`` (restored afterwards); unseeded for None.

    Every method starts from the same weights at a given seed (init seeds below), so the methods are
    paired by seed: body ``1000 s + 1``, every head ``1000 s + 10`` (the tasks' heads start equal, so
    the body first sees one kind of token from all of them), tail of task t ``1000 s + 20 + t``.
    """
    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def build_head(mc: dict[str, Any], task: str = "cls", seed: int | None = None) -> Head:
    init = None if seed is None else 1000 * seed + 10  # one initialisation for every task's head
    return seeded(init, lambda: Head(mc["size"], mc["patch"], mc["dim"], mc["head_width"]))


def build_body(mc: dict[str, Any], seed: int | None = None) -> Body:
    init = None if seed is None else 1000 * seed + 1
    return seeded(init, lambda: Body(mc["dim"], mc["depth"], mc["num_heads"], mc["mlp_ratio"]))


def build_tail(task: str, mc: dict[str, Any], seed: int | None = None) -> nn.Module:
    def make() -> nn.Module:
        if task == "cls":
            return ClsTail(mc["dim"])
        if task == "sev":
            return SevTail(mc["dim"])
        if task == "seg":
            return SegTail(mc["dim"], mc["patch"], mc["head_width"])
        raise ValueError(f"unknown task {task!r}")

    return seeded(None if seed is None else 1000 * seed + 20 + TASK_INDEX[task], make)


class FeSTAModel(nn.Module):
    """Heads, body and tails in one module: FeSTA's exported model (one body, per task the FedAvg-ed
    head and tail), and the baselines' models (a one-task model per client or per task, the
    centralised multi-task model). ``seed`` gives every part its paired initialisation."""

    def __init__(self, mc: dict[str, Any], tasks: list[str], seed: int | None = None) -> None:
        super().__init__()
        self.config = mc
        self.tasks = tasks
        self.body = build_body(mc, seed)
        self.heads = nn.ModuleDict({t: build_head(mc, t, seed) for t in tasks})
        self.tails = nn.ModuleDict({t: build_tail(t, mc, seed) for t in tasks})

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        return self.tails[task](self.body(self.heads[task](x)))


def load(model_dir: Path) -> FeSTAModel:
    """Rebuild the exported model from ``config.json`` + ``model.safetensors`` (no pickle)."""
    meta = json.loads((Path(model_dir) / "config.json").read_text())
    model = FeSTAModel(meta["model"], list(meta["tasks"]))
    model.load_state_dict(load_file(str(Path(model_dir) / "model.safetensors")))
    return model.eval()
