"""The adaptive filters under analysis, vectorised over configurations and Monte-Carlo runs.

Notation (paper -> code): input regressor x(n) = [x(n), ..., x(n-M+1)] -> ``X[:, n]`` (R, M);
weights w(n) -> ``W`` (K, R, M); desired d(n) -> ``d[:, n]``; error e(n) = d(n) - w(n)^T x(n);
step mu -> ``mu``; fractional step mu_f -> ``mu_f``; fractional order f (nu in some papers) ->
``order``; Gamma -> ``scipy.special.gamma``. K configurations (steps, orders) run side by side on
the SAME input and noise realisations (common random numbers), so differences between them are
the algorithms', not the draws'.

Update rules (all of the form w(n+1) = w(n) + [...]):

* LMS:   mu e(n) x(n)
* NLMS:  mu e(n) x(n) / (eps + ||x(n)||^2)
* FLMS (Zubair et al. 2011, the form the paper analyses):
         mu e(n) x(n) + mu_f / Gamma(2 - f) * e(n) x(n) (.) w(n)^(1 - f)
  ``w^(1-f)`` is the Caputo/Riemann-Liouville derivative of w with lower terminal 0, undefined in
  the reals (complex in C) for w < 0: the first kink the paper points out.
* remedied FLMS: ``|w|^(1-f)`` (``form="abs"``) or ``sign(w) |w|^(1-f)`` (``form="signed"``). With
  ``abs`` the update is exactly LMS with the per-tap, time-varying step
  mu_k(n) = mu + mu_f |w_k(n)|^(1-f) / Gamma(2 - f)   (``effective_step``),
  which is the paper's point that the fractional term is a weight-dependent step size.
* FNLMS: both terms divided by eps + ||x(n)||^2.
* momentum FLMS: FLMS + alpha (w(n) - w(n-1)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import gamma

Form = Literal["none", "published", "abs", "signed"]


@dataclass(frozen=True)
class Rule:
    """One family of update rules, with per-configuration parameters (arrays of shape (K,)).

    Attributes:
        form: how w^(1-f) is evaluated: ``none`` (no fractional term: LMS/NLMS), ``published``
            (w^(1-f) as written: NaN for w < 0 in real arithmetic, complex with ``complex_weights``),
            ``abs`` or ``signed`` (the remedies).
        normalized: divide both terms by eps + ||x||^2 (NLMS / FNLMS).
        complex_weights: run the published form in complex arithmetic (principal branch).
    """

    mu: np.ndarray
    mu_f: np.ndarray
    order: np.ndarray
    alpha: np.ndarray
    form: Form = "none"
    normalized: bool = False
    complex_weights: bool = False
    eps: float = 1e-6

    @property
    def k(self) -> int:
        return len(self.mu)


def per_tap_lms(mu_taps: np.ndarray) -> Rule:
    """LMS with a fixed step per tap, ``mu_taps`` (K, M): the frozen-step twin of a remedied FLMS."""
    mu_taps = np.atleast_2d(np.asarray(mu_taps, dtype=np.float64))
    zeros = np.zeros(len(mu_taps))
    return Rule(mu_taps, zeros, np.ones(len(mu_taps)), zeros)


def rule(
    name: str,
    mu: float | np.ndarray,
    mu_f: float | np.ndarray = 0.0,
    order: float | np.ndarray = 1.0,
    alpha: float | np.ndarray = 0.0,
    eps: float = 1e-6,
    complex_weights: bool = False,
) -> Rule:
    """Build the ``Rule`` of a named algorithm; scalars broadcast to a common K."""
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (mu, mu_f, order, alpha)))
    mu_, mu_f_, order_, alpha_ = (a.copy() for a in arrays)
    table: dict[str, tuple[Form, bool, bool]] = {  # name -> (form, normalized, uses momentum)
        "lms": ("none", False, False),
        "nlms": ("none", True, False),
        "flms": ("abs", False, False),
        "flms_signed": ("signed", False, False),
        "flms_published": ("published", False, False),
        "fnlms": ("abs", True, False),
        "mflms": ("abs", False, True),
    }
    if name not in table:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(table)}")
    form, normalized, momentum = table[name]
    if form == "none":
        mu_f_ = np.zeros_like(mu_f_)
    if not momentum:
        alpha_ = np.zeros_like(alpha_)
    if np.any(order_ <= 0) or np.any(order_ > 1):
        raise ValueError(f"fractional order must lie in (0, 1], got {order_.tolist()}")
    return Rule(mu_, mu_f_, order_, alpha_, form, normalized, complex_weights and form == "published", eps)


def fractional_power(w: np.ndarray, order: np.ndarray, form: Form) -> np.ndarray:
    """D^f w = w^(1-f) / Gamma(2-f) in the chosen form. ``order`` broadcasts against ``w``'s first axis."""
    f = order.reshape((-1,) + (1,) * (w.ndim - 1))
    scale = 1.0 / gamma(2.0 - f)
    if form == "published":
        with np.errstate(invalid="ignore"):  # negative base, fractional exponent: NaN in the reals
            return np.power(w, 1.0 - f) * scale
    if form == "abs":
        return np.abs(w) ** (1.0 - f) * scale
    if form == "signed":
        return np.sign(w) * np.abs(w) ** (1.0 - f) * scale
    raise ValueError(f"form {form!r} has no fractional term")


def effective_step(rule_: Rule, w: np.ndarray) -> np.ndarray:
    """The per-tap LMS step that the remedied FLMS takes at weights ``w`` (K, ..., M):
    mu + mu_f |w|^(1-f) / Gamma(2-f). Exact for ``form="abs"`` without normalisation or momentum."""
    shape = (-1,) + (1,) * (w.ndim - 1)
    return rule_.mu.reshape(shape) + rule_.mu_f.reshape(shape) * fractional_power(w, rule_.order, "abs")


def regressors(x: np.ndarray, taps: int) -> np.ndarray:
    """Tapped delay line: (R, N) -> (R, N, M) with X[r, n, k] = x[r, n - k] (zeros before n = 0)."""
    r, n = x.shape
    padded = np.concatenate([np.zeros((r, taps - 1), dtype=x.dtype), x], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, taps, axis=1)  # (R, N, M), oldest first
    return np.ascontiguousarray(windows[..., ::-1])


@dataclass
class AdaptResult:
    """What one vectorised run returns.

    Attributes:
        msd: (K, N) mean over runs of ||w(n+1) - w_o||^2 (NaN once any run is non-finite), or None.
        mse: (K, N) mean over runs of |e(n)|^2 (the a-priori error).
        weights: (K, R, M) final weights (complex for the complex published form).
        first_nonfinite: (K, R) first iteration whose weights are not finite, -1 if never.
        imag_norm: (K,) mean over runs of ||Im w(N)|| (0 unless complex weights).
        prev_weights: (K, R, M) the weights one step before the last (the momentum state).
        msd_runs: (K, R, N) float32 per-run ||w(n+1) - w_o||^2 (``keep_runs``), else None.
        emse_runs: (K, R, N) float32 per-run excess MSE eps^T R eps, eps = w(n) - w_o, the part of
            E e(n)^2 above the Wiener floor (``weight_matrix`` = R and ``keep_runs``), else None.
    """

    msd: np.ndarray | None
    mse: np.ndarray
    weights: np.ndarray
    first_nonfinite: np.ndarray
    imag_norm: np.ndarray
    prev_weights: np.ndarray
    msd_runs: np.ndarray | None = None
    emse_runs: np.ndarray | None = None


def adapt(
    x_reg: np.ndarray,
    d: np.ndarray,
    rule_: Rule,
    w_true: np.ndarray | None = None,
    w0: np.ndarray | None = None,
    w_prev0: np.ndarray | None = None,
    progress=None,
    keep_runs: bool = False,
    weight_matrix: np.ndarray | None = None,
) -> AdaptResult:
    """Run ``rule_`` over every configuration and run at once.

    Args:
        x_reg: (R, N, M) regressors (``regressors``).
        d: (R, N) desired signal d(n) = w_o^T x(n) + v(n).
        rule_: the algorithm and its K parameter sets.
        w_true: (M,) the plant, for the mean-square deviation; None for real signals.
        w0: initial weights, broadcast to (K, R, M) (zeros, as in the paper's experiments).
        w_prev0: the weights before ``w0`` (momentum state when resuming; default ``w0``).
        progress: optional ``progress(iterable, total=, desc=)``.
        keep_runs: also return the per-run curves (for paired statistics over runs); needs ``w_true``.
        weight_matrix: (M, M) input autocorrelation R: also record the per-run excess MSE
            eps(n)^T R eps(n) of the a-priori weights (with ``keep_runs``).
    """
    r, n_iter, m = x_reg.shape
    k = rule_.k
    dtype = np.complex128 if rule_.complex_weights else np.float64
    w = np.zeros((k, r, m), dtype=dtype) if w0 is None else np.broadcast_to(np.asarray(w0, dtype), (k, r, m)).copy()
    w_prev = w.copy() if w_prev0 is None else np.broadcast_to(np.asarray(w_prev0, dtype), (k, r, m)).copy()
    # (K,) -> (K, 1, 1); a per-tap step (K, M) -> (K, 1, M)
    mu, mu_f, alpha = (a.reshape(k, 1, -1) for a in (rule_.mu, rule_.mu_f, rule_.alpha))
    has_frac = rule_.form != "none" and np.any(rule_.mu_f > 0)
    has_momentum = np.any(rule_.alpha > 0)
    msd = np.empty((k, n_iter)) if w_true is not None else None
    mse = np.empty((k, n_iter))
    first_bad = np.full((k, r), -1, dtype=np.int64)
    keep = keep_runs and w_true is not None
    msd_runs = np.empty((k, r, n_iter), np.float32) if keep else None
    emse_runs = np.empty((k, r, n_iter), np.float32) if keep and weight_matrix is not None else None
    steps = range(n_iter) if progress is None else progress(range(n_iter), total=n_iter, desc=f"adapt {rule_.form}")
    with np.errstate(invalid="ignore", over="ignore"):
        for n in steps:
            xn = x_reg[:, n]  # (R, M)
            if emse_runs is not None:  # a-priori weight error: E e(n)^2 = J_min + E eps^T R eps
                eps = np.real(w) - w_true
                emse_runs[:, :, n] = np.sum((eps @ weight_matrix) * eps, axis=2)
            e = d[:, n] - np.einsum("krm,rm->kr", w, xn)  # (K, R)
            g = e[..., None] * xn  # e(n) x(n): (K, R, M)
            if rule_.normalized:
                g = g / (rule_.eps + np.einsum("rm,rm->r", xn, xn))[None, :, None]
            update = mu * g
            if has_frac:
                update = update + mu_f * g * fractional_power(w, rule_.order, rule_.form)
            if has_momentum:
                update = update + alpha * (w - w_prev)
                w_prev = w
            w = w + update
            mse[:, n] = np.mean(np.abs(e) ** 2, axis=1)
            if msd is not None:
                dev = np.sum(np.abs(w - w_true) ** 2, axis=2)  # (K, R)
                msd[:, n] = np.mean(dev, axis=1)
                if msd_runs is not None:
                    msd_runs[:, :, n] = dev
            bad = ~np.all(np.isfinite(w), axis=2) & (first_bad < 0)
            if bad.any():
                first_bad[bad] = n
    imag = np.mean(np.linalg.norm(np.imag(w), axis=2), axis=1) if np.iscomplexobj(w) else np.zeros(k)
    return AdaptResult(msd, mse, w, first_bad, np.nan_to_num(imag, nan=np.inf), w_prev, msd_runs, emse_runs)
