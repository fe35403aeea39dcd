"""What the service and MLflow's pyfunc call: identify a system from (x, d), or filter with the model."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from components.papers.fractional_lms.algorithms import adapt, regressors, rule
from components.papers.fractional_lms.model import IdentifiedSystem

CURVE_POINTS = 500


def mse_curve_db(squared_error: np.ndarray, points: int = CURVE_POINTS) -> list[float]:
    """The learning curve in dB: e(n)^2 averaged over ``len / points`` consecutive samples."""
    n = len(squared_error)
    edges = np.linspace(0, n, min(points, n) + 1).astype(int)
    means = [float(np.mean(squared_error[a:b])) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return [10 * math.log10(max(v, 1e-300)) for v in means]


def identify(
    x: np.ndarray,
    d: np.ndarray,
    taps: int,
    algorithm: str = "lms",
    step: float = 0.01,
    fractional_step: float = 0.01,
    order: float = 0.5,
    momentum: float = 0.5,
) -> dict[str, Any]:
    """Identify an FIR system of ``taps`` taps from input ``x`` and desired ``d`` (both (N,)).

    Returns ``{"weights", "mse_db", "final_mse_db", "samples"}``; the curve has at most
    ``CURVE_POINTS`` points.

    Raises:
        ValueError: mismatched lengths, non-finite input, or weights that became non-finite (the
            published FLMS on a negative weight; a step too large for the input power).
    """
    x, d = np.asarray(x, dtype=np.float64), np.asarray(d, dtype=np.float64)
    if x.ndim != 1 or x.shape != d.shape:
        raise ValueError(f"x and d must be 1-D signals of the same length, got {x.shape} and {d.shape}")
    if len(x) < taps:
        raise ValueError(f"the signals have {len(x)} samples, fewer than the {taps} taps")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(d))):
        raise ValueError("x and d must be finite (no NaN or infinity)")
    r = rule(algorithm, step, fractional_step, order, momentum)
    out = adapt(regressors(x[None], taps), d[None], r)
    bad = int(out.first_nonfinite[0, 0])
    if bad >= 0:
        why = (
            " (the published form w^(1-f) is not real for a negative weight)"
            if algorithm == "flms_published"
            else " (the step is too large for this input's power)"
        )
        raise ValueError(f"{algorithm} diverged: the weights became non-finite at sample {bad}{why}")
    squared = out.mse[0]
    if not np.all(np.isfinite(squared)):
        raise ValueError(f"{algorithm} diverged: the error overflowed (the step is too large for this input's power)")
    curve = mse_curve_db(squared)
    return {"weights": out.weights[0, 0].tolist(), "mse_db": curve, "final_mse_db": curve[-1], "samples": len(x)}


def predict(model: IdentifiedSystem, x: Any, **_: Any) -> np.ndarray:
    """The contract's ``predict``: filter a 1-D input signal with the identified system."""
    return model.filter(np.asarray(x, dtype=np.float64).reshape(-1))


def example_input() -> np.ndarray:
    """A short white-noise input signal (MLflow's signature example)."""
    return np.random.default_rng(0).standard_normal(64)
