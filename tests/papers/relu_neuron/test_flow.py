"""The integrated gradient flow against closed forms and gradient descent; the measures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from components.papers.relu_neuron.analysis import measure, nearest_interpolant, span_residual
from components.papers.relu_neuron.data import init_weights, make_dataset
from components.papers.relu_neuron.flow import gradient, gradient_descent, gradient_flow, loss


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    x, y, _ = make_dataset("general", 12, 5, rng)
    w = rng.standard_normal(5)
    eps = 1e-6
    fd = np.array([(loss(w + eps * e, x, y) - loss(w - eps * e, x, y)) / (2 * eps) for e in np.eye(5)])
    assert np.allclose(gradient(w, x, y), fd, atol=1e-5)


def test_linear_piece_matches_the_matrix_exponential() -> None:
    """With every sample active throughout (positive data and weights), the flow is linear:
    w(t) = w* + expm(-H t) (w0 - w*), H = X^T X, w* = H^{-1} X^T y."""
    rng = np.random.default_rng(1)
    x = np.abs(rng.standard_normal((8, 3)))
    y = x @ np.array([0.5, 1.0, 0.2]) + 0.3
    w0 = np.array([0.4, 0.6, 0.3])
    flow = gradient_flow(x, y, w0, t_max=0.5, grad_tol=1e-14)
    assert not flow.event_times
    h = x.T @ x
    w_star = np.linalg.solve(h, x.T @ y)
    assert np.allclose(flow.w_final, w_star + expm(-h * flow.t[-1]) @ (w0 - w_star), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(("kind", "d"), [("teacher", 2), ("teacher", 30), ("general", 30)])
def test_flow_agrees_with_small_step_gradient_descent(kind: str, d: int) -> None:
    rng = np.random.default_rng(2)
    x, y, _ = make_dataset(kind, 10, d, rng)
    w0 = init_weights(d, 0.5, rng)
    flow = gradient_flow(x, y, w0, t_max=1.0, grad_tol=1e-14)
    coarse = np.linalg.norm(gradient_descent(x, y, w0, flow.t[-1], 1e-3) - flow.w_final)
    fine = np.linalg.norm(gradient_descent(x, y, w0, flow.t[-1], 1e-4) - flow.w_final)
    assert fine <= 0.02 * np.linalg.norm(flow.w_final)
    assert fine <= coarse + 1e-12, "gradient descent approaches the flow as its step shrinks"


def test_teacher_in_two_dimensions_reaches_the_teacher() -> None:
    rng = np.random.default_rng(3)
    x, y, v = make_dataset("teacher", 20, 2, rng)
    flow = gradient_flow(x, y, init_weights(2, 1e-3, rng))
    assert flow.converged and loss(flow.w_final, x, y) < 1e-12
    assert np.allclose(flow.w_final, v, atol=1e-6)


def test_linear_neuron_reaches_its_nearest_interpolant() -> None:
    rng = np.random.default_rng(4)
    x, y, _ = make_dataset("general", 5, 12, rng)
    w0 = init_weights(12, 2.0, rng)
    flow = gradient_flow(x, y, w0, linear=True)
    assert np.allclose(flow.w_final, nearest_interpolant(w0, x, y), atol=1e-7)
    assert not np.allclose(flow.w_final, np.linalg.pinv(x) @ y, atol=1e-2), "a large w0 is not the min-norm interpolant"


def test_sliding_mode_keeps_the_sample_on_its_surface() -> None:
    """A negative label caught between the other samples' push and its own pull: the flow slides along
    w . x_i = 0 instead of chattering (gradient descent zig-zags around the same surface)."""
    x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    y = np.array([1.0, -2.0, 1.0])
    flow = gradient_flow(x, y, np.array([0.2, -0.3]), t_max=20.0)
    assert flow.sliding >= 1 and len(flow.event_times) < 50
    gd = gradient_descent(x, y, np.array([0.2, -0.3]), flow.t[-1], 1e-4)
    assert np.linalg.norm(gd - flow.w_final) < 1e-2


def test_measures() -> None:
    assert span_residual(np.array([1.0, 1.0, 0.0]), np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])) < 1e-12
    assert span_residual(np.array([0.0, 0.0, 1.0]), np.array([[1.0, 0.0, 0.0]])) == pytest.approx(1.0)
    rng = np.random.default_rng(5)
    x, y, v = make_dataset("teacher", 10, 2, rng)
    flow = gradient_flow(x, y, init_weights(2, 1e-4, rng))
    m = measure(flow, x, y, v)
    assert m["converged"] == 1.0 and m["global_min"] == 1.0 and m["span_residual_ever_active"] < 1e-8
    assert m["norm_ratio"] > 1e3, "from a tiny initialisation the norm grows to the teacher's"
