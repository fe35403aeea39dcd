"""Accuracy over seeds with its noise, and paired differences of two methods beyond noise.

Two sources of noise in a test accuracy, both counted:

* run to run (seeds): the spread of the per-seed values, ``sd / sqrt(S)``, widened by Student's t
  with ``S - 1`` degrees of freedom (3 seeds: t = 4.30 for 95 %);
* the finite test set: for one accuracy ``sqrt(p (1 - p) / n)``; for a paired difference on the same
  test images, the spread over images of the per-image difference of correctness (averaged over
  seeds), ``sd_i / sqrt(n)`` (the McNemar-style paired error), widened by the normal 1.96.

The two half-widths add in quadrature. A difference is *beyond noise* when its interval excludes 0.

Inputs: ``correct`` arrays ``(S, n)`` of 0/1 per seed and test image (the same images in every row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """``mean +- half_width`` (95 %), with the two standard errors it is made of."""

    mean: float
    se_seeds: float
    se_test: float
    half_width: float
    seeds: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def beyond_noise(self) -> bool:
        """The 95 % interval excludes zero."""
        return self.low > 0 or self.high < 0


def mean_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error ``sd / sqrt(n)`` of per-item values, e.g. per-image paired differences
    ``a - b`` of one run (NaN SE for a single item)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


def _t(seeds: int, level: float) -> float:
    return float(stats.t.ppf(0.5 + level / 2, seeds - 1)) if seeds > 1 else float("inf")


def _combine(mean: float, per_seed: np.ndarray, se_test: float, level: float) -> Estimate:
    s = len(per_seed)
    se_seeds = float(per_seed.std(ddof=1) / np.sqrt(s)) if s > 1 else float("nan")
    z = float(stats.norm.ppf(0.5 + level / 2))
    seed_part = _t(s, level) * se_seeds if s > 1 else float("inf")
    return Estimate(float(mean), se_seeds, float(se_test), float(np.hypot(seed_part, z * se_test)), s)


def accuracy_estimate(correct: np.ndarray, level: float = 0.95) -> Estimate:
    """Mean accuracy over seeds of ``correct`` ``(S, n)`` with its interval (seeds and test set)."""
    c = np.atleast_2d(np.asarray(correct, dtype=np.float64))
    per_seed = c.mean(axis=1)
    p = float(per_seed.mean())
    return _combine(p, per_seed, np.sqrt(p * (1 - p) / c.shape[1]), level)


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, level: float = 0.95) -> Estimate:
    """``acc(a) - acc(b)`` over paired seeds and the same test images: ``(S, n), (S, n) -> Estimate``.

    Raises:
        ValueError: when the shapes differ.
    """
    a = np.atleast_2d(np.asarray(correct_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(correct_b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"paired arrays must have one shape, got {a.shape} and {b.shape}")
    d = a - b  # (S, n)
    per_seed = d.mean(axis=1)
    per_image = d.mean(axis=0)
    se_test = per_image.std(ddof=1) / np.sqrt(d.shape[1]) if d.shape[1] > 1 else 0.0
    return _combine(float(per_seed.mean()), per_seed, se_test, level)
