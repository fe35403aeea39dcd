"""Paired statistics over test slices, and the no-reference sharpness measure.

Slices of one volume share its structures, so besides the per-slice standard error we compute the
cluster (per-volume) one: the SE of the per-volume means of the paired differences. "Beyond noise"
uses the larger of the two.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def elevational_sharpness(x: torch.Tensor) -> torch.Tensor:
    """Mean squared finite difference along the rows (the blurred elevational axis), x 1e3.

    ``(n, 1, H, W) -> (n,)``; a no-reference measure: the blur lowers it, sharpening raises it.
    """
    return 1e3 * (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean(dim=(1, 2, 3))


def paired(diff: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Mean of paired differences ``(n,)`` and its SE (max of per-slice and per-volume-cluster SE)."""
    diff = np.asarray(diff, dtype=np.float64)
    n = len(diff)
    se_slice = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    means = np.array([diff[groups == g].mean() for g in np.unique(groups)])
    se_cluster = float(means.std(ddof=1) / math.sqrt(len(means))) if len(means) > 1 else math.inf
    return {
        "mean": float(diff.mean()),
        "se": max(se_slice, se_cluster),
        "se_slice": se_slice,
        "se_volume": se_cluster,
        "n": float(n),
    }
