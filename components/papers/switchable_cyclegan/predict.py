"""Serving-side inference: enhance a 2-D slice or a 3-D volume at a chosen alpha.

Inputs are numeric arrays: ``uint8`` (scaled by 1/255) or floats in [0, 1]. A slice ``(H, W)`` has
its rows along the elevational (worst-resolution) axis, as in training. A volume ``(E, A, L)`` has
the elevational axis first; every plane that contains it is enhanced (the elevational-lateral
planes ``vol[:, a, :]`` and the elevational-axial planes ``vol[:, :, l]``) and the two estimates of
each voxel are averaged. Sides are padded (reflect) to a multiple of the U-Net's ``2**depth`` and
cropped back. alpha = 1 is full enhancement, 0 the generator's other direction, values in between
the paper's continuous control. The network itself enhances at alpha_net = 0 (the official
assignment, model.network_alpha); the public alpha keeps "1 = full enhancement".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from components.papers.switchable_cyclegan.model import EnhancerModel

MAX_SLICE_SIDE = 1024
MAX_VOLUME_SIDE = 256
MIN_SIDE = 4
CHUNK = 32


def check_alpha(alpha: float) -> float:
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float))
        or not math.isfinite(alpha)
        or not 0 <= alpha <= 1
    ):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    return float(alpha)


def _as_unit(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise ValueError(f"input must be numeric, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ValueError(f"input must be a slice (H, W) or a volume (E, A, L), got shape {arr.shape}")
    limit = MAX_SLICE_SIDE if arr.ndim == 2 else MAX_VOLUME_SIDE
    if min(arr.shape) < MIN_SIDE or max(arr.shape) > limit:
        raise ValueError(
            f"{'slice' if arr.ndim == 2 else 'volume'} sides must be in [{MIN_SIDE}, {limit}], got {arr.shape}"
        )
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("input holds non-finite values")
    if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
        raise ValueError(f"input other than uint8 must lie in [0, 1], got [{arr.min():.4g}, {arr.max():.4g}]")
    return np.clip(arr, 0, 1)


def enhance_slices(
    model: EnhancerModel, x: torch.Tensor, alpha: float = 1.0, should_stop: Callable[[], bool] | None = None
) -> torch.Tensor:
    """``(n, 1, H, W)`` in [0, 1] -> enhanced ``(n, 1, H, W)`` clipped to [0, 1] (padded, chunked).

    ``alpha`` is the public one (1 = full enhancement; EnhancerModel maps it to the network's).
    ``should_stop`` is asked before every chunk of ``CHUNK`` slices; True raises ``TimeoutError``.
    """
    m = 2 ** int(model.config["model"]["depth"])
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    mode = "reflect" if ph < h and pw < w else "replicate"
    xp = F.pad(x, (0, pw, 0, ph), mode=mode) if ph or pw else x
    outs = []
    for i in range(0, len(xp), CHUNK):
        if should_stop is not None and should_stop():
            raise TimeoutError(f"enhancement stopped after {i} of {len(xp)} slices: the time budget ran out")
        outs.append(model.enhance(xp[i : i + CHUNK], alpha))
    return torch.cat(outs)[..., :h, :w].clamp(0, 1)


def predict(
    model: EnhancerModel,
    volume_or_slice: np.ndarray,
    alpha: float = 1.0,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Enhance a slice ``(H, W)`` or a volume ``(E, A, L)``; returns float32 of the input's shape in [0, 1].

    ``alpha``: 1 = full enhancement (the network's enhancing direction, alpha_net = 0 in the
    official assignment), 0 = the other direction, in between the continuous control.

    Raises:
        ValueError: a non-numeric or non-finite input, a shape that is not 2-D / 3-D, sides outside
            the bounds, floats outside [0, 1], or alpha outside [0, 1].
        TimeoutError: ``should_stop()`` turned True between two chunks of slices.
    """
    alpha = check_alpha(alpha)
    arr = torch.from_numpy(_as_unit(volume_or_slice))
    if arr.ndim == 2:
        return enhance_slices(model, arr[None, None], alpha, should_stop)[0, 0].numpy()
    ea = arr.permute(1, 0, 2)[:, None]  # (A, 1, E, L): planes vol[:, a, :]
    el = arr.permute(2, 0, 1)[:, None]  # (L, 1, E, A): planes vol[:, :, l]
    out_ea = enhance_slices(model, ea, alpha, should_stop)[:, 0].permute(1, 0, 2)
    out_el = enhance_slices(model, el, alpha, should_stop)[:, 0].permute(1, 2, 0)
    return (0.5 * (out_ea + out_el)).numpy().astype(np.float32)


def example_input() -> np.ndarray:
    """A 32x32 degraded slice of a seeded synthetic phantom (rows = elevational)."""
    from components.papers.switchable_cyclegan.phantom import clean_volume, degrade

    gen = torch.Generator().manual_seed(0)
    vol = degrade(clean_volume(32, gen, 1.5), 1.5, 0.01, gen)
    return vol[:, 16, :].numpy().astype(np.float32)
