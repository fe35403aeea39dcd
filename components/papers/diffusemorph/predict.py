"""Registration with the trained model: one pass at t = 0, score scaled by eta (official registration())."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from components.papers.diffusemorph.model import DiffuseMorphModel

MAX_SIDE = 256


def jacobian_folding(flow: np.ndarray) -> float:
    """% of pixels with det(I + grad u) <= 0 (central differences, as voxelmorph's jacobian_determinant)."""
    du_r = np.gradient(flow[0])  # d u_row / d(row, col)
    du_c = np.gradient(flow[1])
    det = (1 + du_r[0]) * (1 + du_c[1]) - du_r[1] * du_c[0]
    return float((det <= 0).mean() * 100)


@torch.no_grad()
def register_tensors(
    model: DiffuseMorphModel, m: torch.Tensor, f: torch.Tensor, eta: float = 1.0, method: str = "diffusemorph"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``m, f (B, 1, H, W)`` in [-1, 1] -> ``(warped (M+1)/2 in [0, 1], flow (B, 2, H, W))``."""
    if method == "voxelmorph":
        return model.baseline(torch.cat([m, f], dim=1))
    t = torch.zeros(m.shape[0], dtype=torch.long)
    score = model.eps(torch.cat([m, f, f], dim=1), t)  # x_0 = F at t = 0 (official registration)
    return model.field(torch.cat([m, score * eta], dim=1))


def register(model: DiffuseMorphModel, moving: np.ndarray, fixed: np.ndarray, eta: float = 1.0) -> dict[str, Any]:
    """Grey ``(H, W)`` images in [0, 1] (the model's size) -> ``{"warped", "flow", "folding_pct"}``."""
    mv, fx = np.asarray(moving, dtype=np.float32), np.asarray(fixed, dtype=np.float32)
    if mv.ndim == 3:
        mv = mv.mean(axis=2)
    if fx.ndim == 3:
        fx = fx.mean(axis=2)
    if mv.shape != fx.shape:
        raise ValueError(f"moving is {mv.shape} but fixed is {fx.shape}; they must be the same size")
    size = int(model.config["size"])
    if mv.shape != (size, size):
        raise ValueError(f"images must be {size}x{size} (the trained size), got {mv.shape}")
    if not (math.isfinite(eta) and 0 <= eta <= 1):
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    if not (np.isfinite(mv).all() and np.isfinite(fx).all()):
        raise ValueError("images hold non-finite values")
    m = torch.from_numpy(mv * 2 - 1)[None, None]
    f = torch.from_numpy(fx * 2 - 1)[None, None]
    warped, flow = register_tensors(model, m, f, eta)
    fl = flow[0].numpy()
    return {"warped": warped[0, 0].clamp(0, 1).numpy(), "flow": fl, "folding_pct": jacobian_folding(fl)}


def predict(model: DiffuseMorphModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The pyfunc entry: ``{"moving", "fixed"}`` -> ``{"warped", "flow"}``."""
    out = register(model, inputs["moving"], inputs["fixed"])
    return {"warped": out["warped"], "flow": out["flow"]}


def example_input() -> dict[str, np.ndarray]:
    """Two 32x32 faces of skimage's lfw_subset."""
    from skimage import data

    from components.papers.diffusemorph.data import _resize

    faces = data.lfw_subset()
    return {"moving": _resize(faces[0], 32), "fixed": _resize(faces[1], 32)}
