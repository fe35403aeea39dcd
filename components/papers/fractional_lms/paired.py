"""Paired statistics over Monte-Carlo runs: every algorithm of a setting sees the same input and
noise realisations (common random numbers), so a comparison is made run by run and its standard
error is that of the per-run differences. A gate criterion compares a confidence bound with its
tolerance, never two means closer than their noise.
"""

from __future__ import annotations

import math

import numpy as np

from components.papers.fractional_lms.measures import (
    iterations_to_within,
    steady_state_db,
    to_db,
)


def tail_mean(runs: np.ndarray, fraction: float) -> np.ndarray:
    """(..., R, N) -> (..., R): each run's mean over the last ``fraction`` of its curve."""
    tail = max(1, int(round(runs.shape[-1] * fraction)))
    return np.asarray(np.mean(runs[..., -tail:], axis=-1, dtype=np.float64))  # an array also for (N,) input


def mean_se(values: np.ndarray) -> tuple[float, float]:
    """(mean, standard error of the mean) of independent per-run values (R,)."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.mean(v)), float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.inf


def paired_db_gap(a_runs: np.ndarray, b_runs: np.ndarray, fraction: float) -> tuple[float, float]:
    """(mean, SE) over runs of 10 log10(steady_a / steady_b): a's steady-state MSD above b's, in dB,
    run by run. ``a_runs``, ``b_runs``: (R, N) per-run curves on the same realisations."""
    return mean_se(to_db(tail_mean(a_runs, fraction)) - to_db(tail_mean(b_runs, fraction)))


def bootstrap_speed_ratio(
    frac_runs: np.ndarray,
    base_runs: np.ndarray,
    fraction: float,
    draws: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """(SE, one-sided 95 % upper bound) of the speed ratio iterations(base) / iterations(fractional),
    by the paired bootstrap: each draw resamples the runs (the same runs for both algorithms), averages
    the curves, and measures both on the resampled means exactly as the point estimate does.

    Args:
        frac_runs, base_runs: (R, N) per-run MSD curves of the two algorithms on the same realisations.
    """
    r = frac_runs.shape[0]
    idx = rng.integers(0, r, size=(draws, r))
    weights = np.zeros((draws, r))
    np.add.at(weights, (np.repeat(np.arange(draws), r), idx.ravel()), 1.0 / r)
    chunks: list[np.ndarray] = []
    for rows in np.array_split(np.arange(draws), max(1, draws // 50)):  # bounded memory: 50 (N,) curves at a time
        fm, bm = weights[rows] @ frac_runs, weights[rows] @ base_runs
        n_f = iterations_to_within(fm, steady_state_db(fm, fraction))
        n_b = iterations_to_within(bm, steady_state_db(bm, fraction))
        chunks.append(n_b / np.maximum(1, n_f))
    ratios = np.concatenate(chunks)
    return float(np.std(ratios, ddof=1)), float(np.quantile(ratios, 0.95))
