"""FedAvg (McMahan et al. 2017, Algorithm 1): the sample-weighted mean of client weights.

FeSTA averages the heads and tails of the clients of one task every k rounds (the paper's
Algorithm 1); the whole-model baseline averages whole models the same way. Weights travel as one
flat float32 vector per module (``flatten``), which both ends can rebuild because they hold the same
architecture: the bytes on the wire are 4 bytes per parameter plus the transport's header.

    w_task = sum_k (n_k / n) w_k,   n = sum_k n_k   (n_k: training images of client k)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def fedavg(vectors: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """``sum_k (n_k / n) w_k`` of flat weight vectors ``(P,)`` with client sizes ``n_k``.

    Raises:
        ValueError: no vectors, a length mismatch, shapes that differ, or weights that are not
            positive.
    """
    if not vectors:
        raise ValueError("fedavg of no clients")
    if len(vectors) != len(weights):
        raise ValueError(f"{len(vectors)} weight vectors but {len(weights)} client sizes")
    if any(v.shape != vectors[0].shape for v in vectors):
        raise ValueError("fedavg of weight vectors of different shapes")
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
    if not bool((w > 0).all()):
        raise ValueError(f"client sizes must be positive, got {list(weights)}")
    w = w / w.sum()
    out = torch.zeros_like(vectors[0], dtype=torch.float64)
    for v, wk in zip(vectors, w, strict=True):
        out += wk * v.double()
    return out.to(vectors[0].dtype)


def flatten(*modules: nn.Module) -> torch.Tensor:
    """The parameters of ``modules`` as one detached float32 vector (in module, then parameter order)."""
    return torch.cat([p.detach().reshape(-1).float() for m in modules for p in m.parameters()])


def unflatten(vector: torch.Tensor, *modules: nn.Module) -> None:
    """Write ``vector`` (from ``flatten`` of the same architecture) into the parameters of ``modules``."""
    params = [p for m in modules for p in m.parameters()]
    total = sum(p.numel() for p in params)
    if vector.ndim != 1 or vector.numel() != total:
        raise ValueError(f"weight vector of shape {tuple(vector.shape)} for modules of {total} parameters")
    with torch.no_grad():  # copy_, not .data =: two modules loaded from one vector must not share storage
        for part, p in zip(torch.split(vector, [p.numel() for p in params]), params, strict=True):
            p.copy_(part.view_as(p))


def n_params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())
