"""The classical anchors of system identification: the Wiener filter, least squares, and the
small-step theory of the LMS excess mean-square error above the Wiener floor.

* Wiener filter (Haykin, *Adaptive Filter Theory*, Ch. 2): w_opt = R^-1 p with R = E[x x^T] and
  p = E[x d]; its error is the floor J_min = sigma_d^2 - p^T w_opt that no linear filter of that
  length beats. For an FIR plant of the filter's length in white noise v, p = R w_o, w_opt = w_o
  and J_min = sigma_v^2.
* Least squares on the data (the batch estimate of the same filter): w_LS = argmin ||d - X w||^2;
  for Gaussian white input its mean-square deviation is about sigma_v^2 tr(R^-1) / N.
* LMS in steady state (Haykin Ch. 6; Widrow's misadjustment): E e^2 = J_min + J_ex with, for a small
  step, J_ex = mu tr(R) J_min / 2. For a per-tap step matrix D = diag(mu_k) (the frozen-step view of
  the remedied FLMS, algorithms.effective_step) the same first-order analysis gives the weight-error
  covariance K from the Lyapunov equation  D R K + K R D = J_min D R D  and J_ex = tr(R K); with
  D = mu I it reduces to K = mu J_min I / 2, J_ex = mu tr(R) J_min / 2.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_continuous_lyapunov

from components.papers.fractional_lms.algorithms import regressors


def wiener(r: np.ndarray, p: np.ndarray, sigma_d2: float) -> tuple[np.ndarray, float]:
    """``(w_opt (M,), J_min)`` from the true second-order statistics R (M, M), p (M,), sigma_d^2."""
    w = np.linalg.solve(r, p)
    return w, float(sigma_d2 - p @ w)


def least_squares(x: np.ndarray, d: np.ndarray, taps: int) -> np.ndarray:
    """w_LS (M,) of one recorded signal pair x, d (N,) with the same tapped delay line as the filters."""
    xr = regressors(np.asarray(x, dtype=np.float64)[None], taps)[0]
    return np.linalg.lstsq(xr, np.asarray(d, dtype=np.float64), rcond=None)[0]


def small_step_excess_mse(step: float | np.ndarray, r: np.ndarray, j_min: float) -> float:
    """J_ex of LMS with step ``step`` (a scalar mu or per-tap (M,)) in steady state, first order in
    the step (module docstring): tr(R K) with D R K + K R D = J_min D R D."""
    m = len(r)
    dmat = np.diag(np.broadcast_to(np.asarray(step, dtype=np.float64), (m,)))
    a = dmat @ r
    k = solve_continuous_lyapunov(a, j_min * dmat @ r @ dmat)  # solves A K + K A^H = Q
    return float(np.trace(r @ k))
