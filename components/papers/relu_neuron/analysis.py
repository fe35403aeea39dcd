"""What is measured on one trajectory: norm monotonicity, support vectors, the span and the
characterization of the limit, convergence. See README.md for which claim each measure checks.

Definitions used here (our reading of the paper, Sec. 3; the notation follows it):
* support vectors S: the samples active at the limit, {i : w(inf) . x_i > 0}; they are the ones
  whose activation decides the solution (the flow only ever moves w along active samples, and at
  the limit only S pulls). Samples held on their surface at the limit (B, a Filippov sliding mode,
  only with negative labels) are reported apart: they constrain the limit to w . x_j = 0;
* ever-involved set E: the samples active (or sliding on their surface) at some time; w(t) - w(0)
  lies in span{x_i : i in E} for every t, because dw/dt is a combination of those samples (a sanity
  identity of the integration, not a theorem);
* the support-vector characterization: w(inf) - w(0) in span{x_i : i in S}, and w(inf) is the point
  nearest the initialisation that fits the support vectors (least squares when they cannot be
  interpolated) on the surfaces of B: w(0) + X_S^+ (y_S - X_S w(0)) when B is empty, the ReLU
  analogue of the linear neuron's nearest interpolant.
"""

from __future__ import annotations

import numpy as np

from components.papers.relu_neuron.flow import ACTIVE, SLIDING, Flow, gradient, loss


def span_residual(v: np.ndarray, basis: np.ndarray) -> float:
    """||v - P v|| / ||v||, P the orthogonal projector onto the row span of ``basis`` (k, d)."""
    norm = float(np.linalg.norm(v))
    if norm == 0:
        return 0.0
    if len(basis) == 0:
        return 1.0
    coef, *_ = np.linalg.lstsq(basis.T, v, rcond=None)
    return float(np.linalg.norm(v - basis.T @ coef)) / norm


def nearest_interpolant(w0: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """w0 + X^+ (y - X w0): the point of {w : X w = y} (or the least-squares set) nearest w0."""
    if len(x) == 0:
        return w0.copy()
    return w0 + np.linalg.pinv(x) @ (y - x @ w0)


def constrained_nearest_fit(w0: np.ndarray, x_fit: np.ndarray, y_fit: np.ndarray, x_zero: np.ndarray) -> np.ndarray:
    """The point nearest ``w0`` among the least-squares fits of ``x_fit w = y_fit`` on {w : x_zero w = 0}."""
    d = len(w0)
    if len(x_zero) == 0:
        return nearest_interpolant(w0, x_fit, y_fit)
    _, sv, vt = np.linalg.svd(x_zero)
    rank = int(np.sum(sv > 1e-12 * sv[0]))
    null = vt[rank:].T  # (d, d - rank) basis of {w : x_zero w = 0}
    if null.shape[1] == 0:
        return np.zeros(d)
    base = null @ (null.T @ w0)  # w0 projected onto the constraint subspace
    if len(x_fit) == 0:
        return base
    a = x_fit @ null
    return base + null @ (np.linalg.pinv(a) @ (y_fit - x_fit @ base))


def norm_is_monotone(flow: Flow, rel_tol: float = 1e-9) -> bool:
    """||w(t)|| never decreases along the sampled trajectory (up to ``rel_tol`` of the norm)."""
    norms = np.linalg.norm(flow.w, axis=1)
    return bool(np.all(np.diff(norms) >= -rel_tol * np.maximum(norms[1:], 1e-300)))


def measure(flow: Flow, x: np.ndarray, y: np.ndarray, teacher: np.ndarray | None) -> dict[str, float]:
    """The measures of one trajectory (floats; booleans as 0/1)."""
    w0, w_inf = flow.w[0], flow.w_final
    support = flow.final_state == ACTIVE
    boundary = flow.final_state == SLIDING
    ever = flow.ever_involved
    delta = w_inf - w0
    predicted = constrained_nearest_fit(w0, x[support], y[support], x[boundary])
    out = {
        "dead_init": float(not flow.patterns[0].any()),
        "converged": float(flow.converged),
        "final_loss": loss(w_inf, x, y),
        "final_grad_norm": float(np.linalg.norm(gradient(w_inf, x, y))),
        "norm_monotone": float(norm_is_monotone(flow)),
        "norm_ratio": float(np.linalg.norm(w_inf) / max(float(np.linalg.norm(w0)), 1e-300)),
        "events": float(len(flow.event_times)),
        "reactivations": float(flow.reactivations),
        "support_size": float(support.sum()),
        "boundary_size": float(boundary.sum()),
        "ever_active_size": float(ever.sum()),
        "support_is_ever_active": float(np.array_equal(support, ever)),
        "span_residual_ever_active": span_residual(delta, x[ever]),
        "span_residual_support": span_residual(delta, x[support | boundary]),
        # relative to the problem's scale: a flow that collapses to the origin (a stationary point) has
        # ||w(inf)|| ~ 1e-10, and an error relative to that alone would read as a failure
        "characterization_error": float(
            np.linalg.norm(w_inf - predicted) / max(float(np.linalg.norm(w_inf)), float(np.linalg.norm(w0)), 1e-300)
        ),
    }
    if teacher is not None:
        out["teacher_distance"] = float(np.linalg.norm(w_inf - teacher) / np.linalg.norm(teacher))
        out["global_min"] = float(out["final_loss"] < 1e-12 * max(1.0, float(np.sum(y**2))))
    return out
