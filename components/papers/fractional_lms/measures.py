"""The measures of a learning curve: steady state, plateau, iterations to come within 1 dB of the
steady state, and the step of a conventional algorithm that matches a given steady state."""

from __future__ import annotations

import math
from typing import overload

import numpy as np


@overload
def to_db(v: np.ndarray) -> np.ndarray: ...
@overload
def to_db(v: float) -> float: ...
def to_db(v: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(v)


def steady_state_db(msd: np.ndarray, fraction: float) -> np.ndarray:
    """(K, N) -> (K,) steady-state MSD in dB: the mean of the last ``fraction`` of the curve."""
    tail = max(1, int(round(msd.shape[-1] * fraction)))
    return to_db(np.mean(msd[..., -tail:], axis=-1))


def converged(msd: np.ndarray, fraction: float, tol_db: float = 0.5) -> np.ndarray:
    """(K,) whether the last two ``fraction``-long windows agree within ``tol_db`` (a plateau)."""
    tail = max(1, int(round(msd.shape[-1] * fraction)))
    last = to_db(np.mean(msd[..., -tail:], axis=-1))
    before = to_db(np.mean(msd[..., -2 * tail : -tail], axis=-1))
    return np.isfinite(last) & (np.abs(last - before) < tol_db)


def iterations_to_within(msd: np.ndarray, ss_db: np.ndarray, margin_db: float = 1.0) -> np.ndarray:
    """(K,) first iteration from which the (lightly smoothed) MSD stays within ``margin_db`` of steady state."""
    window = max(1, msd.shape[-1] // 200)
    kernel = np.ones(window) / window
    out = np.full(msd.shape[0], -1, dtype=np.int64)
    for k, curve in enumerate(msd):
        smooth = to_db(np.convolve(curve, kernel, mode="same"))
        above = np.nonzero(~(smooth <= ss_db[k] + margin_db))[0]  # NaN counts as above
        above = above[above < len(curve) - window]  # ignore the convolution's ragged end
        out[k] = 0 if len(above) == 0 else min(int(above[-1]) + 1, len(curve))
    return out


def match_step(grid: np.ndarray, ss_db: np.ndarray, ok: np.ndarray, target_db: float) -> float:
    """The step whose steady state is ``target_db``, by interpolating log(step) over the converged,
    monotone part of the grid (steady-state MSD grows with the step). NaN if out of range."""
    steps, levels = grid[ok], ss_db[ok]
    if len(steps) < 2 or not levels.min() <= target_db <= levels.max():
        return math.nan
    order = np.argsort(levels)
    return float(np.exp(np.interp(target_db, levels[order], np.log(steps[order]))))
