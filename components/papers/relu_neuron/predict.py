"""What the service and MLflow's pyfunc call: predict with the neuron; analyse a caller's dataset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from components.papers.relu_neuron.analysis import measure
from components.papers.relu_neuron.data import init_weights
from components.papers.relu_neuron.flow import gradient_flow, loss, single_threaded_blas
from components.papers.relu_neuron.model import Neuron

TRAJECTORY_POINTS = 200


def predict(model: Neuron, x: Any, **_: Any) -> np.ndarray:
    """The contract's ``predict``: relu(x @ w) for inputs (n, d)."""
    return model(np.asarray(x, dtype=np.float64))


def example_input() -> np.ndarray:
    """Four 2-D inputs (MLflow's signature example; the default neuron has d = 2)."""
    return np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5], [0.3, -0.7]])


def analyze(
    x: np.ndarray,
    y: np.ndarray,
    init_scale: float,
    seed: int,
    t_max: float = 1e5,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run the gradient flow on ``(x (n, d), y (n,))`` from a random w(0) of norm ``init_scale``.

    ``should_stop``: polled inside the solver; when it returns True, ``TimeoutError`` (flow.py).

    Returns the norm trajectory (at most ``TRAJECTORY_POINTS`` points, with their times), the support
    vectors (indices active at the limit), the final weights and loss, and the measures of
    ``analysis.measure``.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"X must be (n, d) and y (n,); got X {x.shape} and y {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must be finite (no NaN or infinity)")
    w0 = init_weights(x.shape[1], init_scale, np.random.default_rng(seed))
    with single_threaded_blas():
        flow = gradient_flow(x, y, w0, t_max=t_max, should_stop=should_stop)
    idx = np.unique(np.linspace(0, len(flow.t) - 1, min(TRAJECTORY_POINTS, len(flow.t))).astype(int))
    stats = measure(flow, x, y, None)
    return {
        "w0": w0.tolist(),
        "w": flow.w_final.tolist(),
        "final_loss": loss(flow.w_final, x, y),
        "time": flow.t[idx].tolist(),
        "norm": np.linalg.norm(flow.w[idx], axis=1).tolist(),
        "support_vectors": np.flatnonzero(x @ flow.w_final > 0).tolist(),
        "ever_active": np.flatnonzero(flow.ever_active).tolist(),
        "pattern_changes": len(flow.event_times),
        "converged": flow.converged,
        "norm_monotone": bool(stats["norm_monotone"]),
        "span_residual_support": stats["span_residual_support"],
    }
