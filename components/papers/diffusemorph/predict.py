"""Registration and synthesis with the trained model (official GaussianDiffusion.registration and
.generation, model/diffusion_net_{2D,3D}/diffusion.py).

* Registration: one pass at t = 0: ``score = eps_theta([M, F, F], 0)`` (x_0 = F), then the
  deformation network on ``[M, eta * score]``; eta in [0, 1] gives the continuum of deformations
  (official ``nsample`` values ``linspace(0, 1, 7)``).
* Synthesis: forward-diffuse M to ``t0`` (official ``fw_timesteps`` 200) and run the reverse DDPM
  process conditioned on ``[M, F]`` down to t = 0 (ancestral steps, x0 clipped to [-1, 1]).

Inputs of any size (up to ``MAX_SIDE`` a side) are resized to the trained size, registered there,
and the flow is resized back (its components scaled by the size ratio of their axis), so the warp
and the folding are at the input's resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from components.blocks.diffusion.samplers import sample
from components.blocks.diffusion.schedule import q_sample
from components.papers.diffusemorph.model import DiffuseMorphModel, warp

MAX_SIDE = 1024  # per side, 2-D
MAX_VOXELS = 256**3  # 3-D
MAX_SYNTHESIS_STEPS = 1000


def jacobian_determinant(flow: np.ndarray) -> np.ndarray:
    """``det(I + grad u)`` of a displacement ``(nd, *S)`` (central differences, as voxelmorph's
    ``jacobian_determinant``): ``(*S)``. A value <= 0 is a fold (the map is not locally invertible)."""
    nd = flow.shape[0]
    grad = np.stack([np.stack(np.gradient(flow[i]), axis=0) for i in range(nd)])  # (nd, nd, *S): d u_i / d x_j
    jac = grad + np.eye(nd).reshape(nd, nd, *([1] * nd))
    return np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))


def jacobian_folding(flow: np.ndarray) -> float:
    """% of pixels (voxels) with ``det(I + grad u) <= 0``."""
    return float((jacobian_determinant(flow) <= 0).mean() * 100)


@torch.no_grad()
def register_tensors(
    model: DiffuseMorphModel, m: torch.Tensor, f: torch.Tensor, eta: float = 1.0, method: str = "diffusemorph"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``m, f (B, 1, *S)`` in [-1, 1] -> ``(warped (M+1)/2 in [0, 1], flow (B, nd, *S))``."""
    if method == "voxelmorph":
        return model.baseline(torch.cat([m, f], dim=1))
    t = torch.zeros(m.shape[0], dtype=torch.long, device=m.device)
    score = model.eps(torch.cat([m, f, f], dim=1), t)  # x_0 = F at t = 0 (official registration)
    return model.field(torch.cat([m, score * eta], dim=1))


def _resize(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``(B, C, *S)`` -> ``(B, C, *shape)``, linear (antialiased when a 2-D image shrinks)."""
    if tuple(x.shape[2:]) == tuple(shape):
        return x
    if len(shape) == 2:
        shrink = any(a > b for a, b in zip(x.shape[2:], shape, strict=True))
        return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=shrink)
    return F.interpolate(x, size=shape, mode="trilinear", align_corners=False)


def resize_flow(flow: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A displacement ``(B, nd, *S)`` in pixels of ``S`` -> ``(B, nd, *shape)`` in pixels of ``shape``."""
    if tuple(flow.shape[2:]) == tuple(shape):
        return flow
    out = _resize(flow, shape)
    ratio = torch.tensor([b / a for a, b in zip(flow.shape[2:], shape, strict=True)], dtype=flow.dtype)
    return out * ratio.view(1, -1, *([1] * len(shape)))


def _grey(x: np.ndarray, nd: int, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if nd == 2 and a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[..., :3].mean(axis=2)
    if a.ndim != nd:
        raise ValueError(f"{what} must be a {nd}-D {'image' if nd == 2 else 'volume'}, got shape {a.shape}")
    return a


def _check(mv: np.ndarray, fx: np.ndarray, nd: int, eta: float) -> None:
    if mv.shape != fx.shape:
        raise ValueError(f"moving is {mv.shape} but fixed is {fx.shape}; they must be the same size")
    if nd == 2 and max(mv.shape) > MAX_SIDE:
        raise ValueError(f"images are {mv.shape}; at most {MAX_SIDE} pixels a side are accepted")
    if nd == 3 and mv.size > MAX_VOXELS:
        raise ValueError(f"volumes are {mv.shape}; at most {MAX_VOXELS} voxels are accepted")
    if min(mv.shape) < 2:
        raise ValueError(f"images are {mv.shape}; at least 2 pixels a side are needed")
    if not (math.isfinite(eta) and 0 <= eta <= 1):
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    if not (np.isfinite(mv).all() and np.isfinite(fx).all()):
        raise ValueError("images hold non-finite values")


def register(
    model: DiffuseMorphModel, moving: np.ndarray, fixed: np.ndarray, eta: float = 1.0, method: str = "diffusemorph"
) -> dict[str, Any]:
    """Register ``moving`` to ``fixed`` (same shape, values in [0, 1]).

    2-D models take ``(H, W)`` grey or ``(H, W, 3)`` colour images (registered on grey, the colour
    moving image is warped); 3-D models take ``(X, Y, Z)`` volumes.

    Returns:
        ``{"warped": like moving, "flow": (nd, *S) float32 pixels (channel i along axis i: the
        warped image at x is moving at x + flow(x)), "folding_pct", "mean_displacement"}``.
    """
    nd = model.dims
    mv, fx = _grey(moving, nd, "moving"), _grey(fixed, nd, "fixed")
    _check(mv, fx, nd, eta)
    trained = (int(model.config["size"]),) * 2 + ((int(model.config["depth"]),) if nd == 3 else ())
    m = _resize(torch.from_numpy(mv).clamp(0, 1)[None, None], trained) * 2 - 1
    f = _resize(torch.from_numpy(fx).clamp(0, 1)[None, None], trained) * 2 - 1
    _, flow = register_tensors(model, m, f, eta, method)
    flow = resize_flow(flow, mv.shape)  # (1, nd, *S)
    src = torch.from_numpy(np.asarray(moving, dtype=np.float32))
    src = src.permute(2, 0, 1)[None] if (nd == 2 and src.dim() == 3) else src[None, None]  # (1, C, *S)
    warped = warp(src, flow)[0].clamp(0, 1)
    warped_np = warped.permute(1, 2, 0).numpy() if np.asarray(moving).ndim == 3 and nd == 2 else warped[0].numpy()
    fl = flow[0].numpy().astype(np.float32)
    return {
        "warped": warped_np,
        "flow": fl,
        "folding_pct": jacobian_folding(fl),
        "mean_displacement": float(np.linalg.norm(fl, axis=0).mean()),
    }


@torch.no_grad()
def synthesize(
    model: DiffuseMorphModel,
    moving: np.ndarray,
    fixed: np.ndarray,
    t0: int = 200,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Official ``generation``: M forward-diffused to ``t0``, then ``t0`` reverse DDPM steps
    conditioned on ``[M, F]`` -> the synthesised image in [0, 1], at the trained size."""
    nd = model.dims
    mv, fx = _grey(moving, nd, "moving"), _grey(fixed, nd, "fixed")
    _check(mv, fx, nd, 0.0)
    if not 1 <= t0 <= min(MAX_SYNTHESIS_STEPS, len(model.abar)):
        raise ValueError(f"t0 must be in [1, {min(MAX_SYNTHESIS_STEPS, len(model.abar))}], got {t0}")
    trained = (int(model.config["size"]),) * 2 + ((int(model.config["depth"]),) if nd == 3 else ())
    m = _resize(torch.from_numpy(mv).clamp(0, 1)[None, None], trained) * 2 - 1
    f = _resize(torch.from_numpy(fx).clamp(0, 1)[None, None], trained) * 2 - 1
    gen = torch.Generator().manual_seed(seed)
    abar = model.abar.float()
    x = q_sample(m, torch.tensor([t0 - 1]), torch.randn(m.shape, generator=gen), abar)

    def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if should_stop is not None and should_stop():
            raise TimeoutError("synthesis stopped: the time budget is spent")
        return model.eps(torch.cat([m, f, x_t], dim=1), t)

    out, _ = sample(eps, x, list(range(t0 - 1, -1, -1)), abar, method="ddpm", generator=gen)
    return ((out[0, 0] + 1) / 2).clamp(0, 1).numpy()


def predict(model: DiffuseMorphModel, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The pyfunc entry: ``{"moving", "fixed"[, "eta"]}`` -> ``{"warped", "flow"}``."""
    out = register(model, inputs["moving"], inputs["fixed"], float(inputs.get("eta", 1.0)))
    return {"warped": out["warped"], "flow": out["flow"]}


def example_input() -> dict[str, np.ndarray]:
    """Two 32x32 faces of skimage's lfw_subset."""
    from skimage import data

    from components.papers.diffusemorph.data import _resize as resize2d

    faces = data.lfw_subset()
    return {"moving": resize2d(faces[0], 32), "fixed": resize2d(faces[1], 32)}
