"""Gradient flow of a single ReLU neuron, integrated piece by piece between activation changes.

The model is f(x) = relu(w . x) with the square loss (paper, Sec. 2)

    L(w) = 1/2 sum_i (relu(w . x_i) - y_i)^2,

and the gradient flow dw/dt = -grad L(w) = -sum_{i in A(w)} (w . x_i - y_i) x_i, where
A(w) = {i : w . x_i > 0} is the activation pattern (relu'(0) = 0, PyTorch's convention). Inside a
pattern the flow is the linear ODE dw/dt = -X_A^T (X_A w - y_A), so the only non-smooth moments are
the pattern changes, the zeros of w . x_i. ``gradient_flow`` integrates each piece with scipy's
``solve_ivp`` (LSODA with the exact constant Jacobian -X_A^T X_A) and stops at the first sample that
crosses zero (one terminal event per sample: active ones are watched going down, inactive ones going
up), updates the pattern and continues; a last terminal event stops the flow once ||grad L|| is
below ``grad_tol``. ``gradient_descent`` is the small-step reference the flow is tested against.

The linear neuron f(x) = w . x is the contrast: its flow from w0 converges to
w0 + X^+ (y - X w0), the interpolant nearest w0 (the minimum-norm one when w0 = 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from scipy.integrate import solve_ivp


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the enclosed flows with one BLAS thread. Their matrices are at most a few hundred wide, so
    threads only add synchronisation; on a busy 2-core machine OpenBLAS's spinning threads made the
    default-scale grid 6x slower (194 s vs 32 s, measured)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def loss(w: np.ndarray, x: np.ndarray, y: np.ndarray, linear: bool = False) -> float:
    """L(w) = 1/2 sum (relu(w . x_i) - y_i)^2 (or the linear neuron's)."""
    z = x @ w
    return 0.5 * float(np.sum(((z if linear else relu(z)) - y) ** 2))


def gradient(w: np.ndarray, x: np.ndarray, y: np.ndarray, linear: bool = False) -> np.ndarray:
    """grad L(w) = sum_{i in A(w)} (w . x_i - y_i) x_i  (all i for the linear neuron). (d,)"""
    z = x @ w
    active = np.ones_like(z, bool) if linear else z > 0
    return x[active].T @ (z[active] - y[active])


ACTIVE, SLIDING, INACTIVE = 1, 0, -1


@dataclass
class Flow:
    """A gradient-flow trajectory.

    Attributes:
        t: (T,) times of the dense samples; w: (T, d) the weights there.
        event_times: when the activation pattern changed; patterns: the pattern after each change
            (``patterns[0]`` is the initial one), boolean (n,) arrays.
        converged: ||grad L|| fell below the tolerance before ``t_max``.
        reactivations: samples that left the active set and later came back.
        sliding: the most samples held on their surface w . x_i = 0 at once (Filippov sliding).
        ever_sliding: (n,) which samples slid at some time; states: the state after each change
            (1 active, 0 sliding, -1 inactive).
    """

    t: np.ndarray
    w: np.ndarray
    event_times: list[float] = field(default_factory=list)
    patterns: list[np.ndarray] = field(default_factory=list)
    converged: bool = False
    reactivations: int = 0
    sliding: int = 0
    ever_sliding: np.ndarray | None = None
    states: list[np.ndarray] = field(default_factory=list)

    @property
    def w_final(self) -> np.ndarray:
        return self.w[-1]

    @property
    def ever_active(self) -> np.ndarray:
        return np.any(np.stack(self.patterns), axis=0)

    @property
    def final_state(self) -> np.ndarray:
        """(n,) 1 active, 0 sliding (held on w . x_i = 0), -1 inactive, at the end of the flow."""
        return self.states[-1] if self.states else np.where(self.patterns[0], ACTIVE, INACTIVE)

    @property
    def ever_involved(self) -> np.ndarray:
        """Samples ever active or sliding: the flow's velocity always lies in their span."""
        return self.ever_active | self.ever_sliding


def _projector(x: np.ndarray, state: np.ndarray, skip: int | None = None) -> np.ndarray | None:
    """Orthogonal projector onto the complement of span{x_j : j sliding} (None when none slides)."""
    idx = [j for j in np.flatnonzero(state == SLIDING) if j != skip]
    if not idx:
        return None
    q, _ = np.linalg.qr(x[idx].T)  # (d, k) orthonormal basis of the sliding normals
    return np.eye(x.shape[1]) - q @ q.T


def _velocity(w: np.ndarray, x: np.ndarray, y: np.ndarray, state: np.ndarray, skip: int | None = None) -> np.ndarray:
    """dw/dt = P (X_A^T y_A - X_A^T X_A w): the active samples' pull, projected to keep sliding samples on
    their surfaces (``skip``: leave sample ``skip`` out of the pattern and of the constraints)."""
    act = state == ACTIVE
    if skip is not None:
        act = act.copy()
        act[skip] = False
    v = -(x[act].T @ (x[act] @ w - y[act]))
    p = _projector(x, state, skip)
    return v if p is None else p @ v


def _state_after_crossing(w: np.ndarray, x: np.ndarray, y: np.ndarray, state: np.ndarray, i: int) -> int:
    """Where sample i (now at w . x_i = 0) goes. Without i the flow moves w . x_i at rate
    ``up = x_i . v``; with i active its own term adds y_i ||x_i||^2 (its residual at the boundary is
    -y_i). Both up: active; both down: inactive; up without and down with i (only when y_i < 0): a
    Filippov sliding mode along w . x_i = 0, the limit of gradient descent's zig-zag; both pointing
    away (y_i > 0, a repelling surface): inactive, relu'(0) = 0."""
    up = float(x[i] @ _velocity(w, x, y, state, skip=i))
    up_with = up + float(y[i] * (x[i] @ x[i]))
    if up > 0 and up_with > 0:
        return ACTIVE
    if up > 0 and up_with <= 0:
        return SLIDING
    return INACTIVE


def _settle(w: np.ndarray, x: np.ndarray, y: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Release sliding samples whose push already points off their surface. A pattern change
    elsewhere can flip a sliding sample's push at the very start of a piece, where no event can see
    a sign change; check them all, one release at a time, until the pattern is consistent."""
    state = state.copy()
    for _ in range(len(state)):
        changed = False
        for j in np.flatnonzero(state == SLIDING).tolist():
            up = float(x[j] @ _velocity(w, x, y, state, skip=j))
            p_j = _projector(x, state, skip=j)
            a_j = x[j] if p_j is None else p_j @ x[j]
            if up <= 0:
                state[j] = INACTIVE
            elif up + float(y[j] * (x[j] @ a_j)) >= 0:
                state[j] = ACTIVE
            else:
                continue
            changed = True
            break
        if not changed:
            break
    return state


# The event functions of one piece, with that piece's arrays bound by functools.partial (fn(w)).
def _inactive_push(a: np.ndarray, drive: np.ndarray, hessian: np.ndarray, w_: np.ndarray) -> float:
    return float(a @ (drive - hessian @ w_))


def _active_push(a: np.ndarray, c: float, drive: np.ndarray, hessian: np.ndarray, w_: np.ndarray) -> float:
    return float(a @ (drive - hessian @ w_)) + c


def _margin(xi: np.ndarray, w_: np.ndarray) -> float:
    return float(xi @ w_)


def _gradient_gap(a: np.ndarray, b: np.ndarray, tol: float, w_: np.ndarray) -> float:
    return float(np.linalg.norm(b + a @ w_)) - tol


@dataclass
class _Event:
    """A terminal event of ``solve_ivp``: ``fn(w) + offset`` crossing zero in ``direction``."""

    fn: Callable[[np.ndarray], float]
    offset: float
    direction: float
    terminal: bool = True

    def __call__(self, _t: float, w_: np.ndarray) -> float:
        return self.fn(w_) + self.offset


def gradient_flow(
    x: np.ndarray,
    y: np.ndarray,
    w0: np.ndarray,
    t_max: float = 1e4,
    grad_tol: float = 1e-9,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_events: int = 10_000,
    linear: bool = False,
    samples_per_piece: int = 32,
    should_stop: Callable[[], bool] | None = None,
) -> Flow:
    """Integrate dw/dt = -grad L(w) from ``w0`` (see the module docstring). x: (n, d), y: (n,).

    ``should_stop`` (a caller's time budget, e.g. the HTTP service's) is polled at every right-hand
    side evaluation of the ODE solver and between pieces; once it returns True the flow raises
    ``TimeoutError`` instead of finishing (one stiff piece alone can take minutes at n = d = 200).

    A sample whose label is negative can trap the flow on its surface w . x_i = 0 (inactive, the
    other samples push w . x_i up; active, its own term pulls it down): the flow then slides along
    the surface (Filippov), with the velocity projected onto it, until the push reverses. With
    several sliding samples at once each one's exit is tested with the others held (exact when they
    leave one at a time; simultaneous exits would need the full complementarity problem).
    """
    n, d = x.shape
    w = np.asarray(w0, dtype=np.float64).copy()
    state = np.where(np.ones(n, bool) if linear else (x @ w) > 0, ACTIVE, INACTIVE)
    flow = Flow(
        t=np.array([0.0]),
        w=w[None].copy(),
        patterns=[state == ACTIVE],
        ever_sliding=np.zeros(n, bool),
        states=[state.copy()],
    )
    left: set[int] = set()
    t0 = 0.0
    for _ in range(max_events + 1):
        act = state == ACTIVE
        xa, ya = x[act], y[act]
        hessian, drive = xa.T @ xa, xa.T @ ya  # inside the piece: dw/dt = P (drive - hessian w)
        proj = _projector(x, state)
        jac = -hessian if proj is None else -(proj @ hessian)
        shift = drive if proj is None else proj @ drive

        def rhs(_t, w_, a=jac, b=shift):
            if should_stop is not None and should_stop():
                raise TimeoutError(
                    f"gradient flow stopped at t = {_t:.3g} after {len(flow.event_times)} pattern changes"
                )
            return b + a @ w_

        # Every event watches one signed quantity; each is shifted by a hysteresis of 1e-12 of its scale
        # toward "not yet", so a value that starts at the boundary (the sample just crossed, a push
        # that just flipped) cannot be read as a crossing by the root finder's dense interpolant.
        w_scale = float(np.linalg.norm(w)) + 1e-300
        v_scale = float(np.linalg.norm(drive)) + float(np.linalg.norm(hessian, 2)) * w_scale
        specs: list[tuple[int, float, Callable[[np.ndarray], float], float]] = []  # (sample, direction, fn(w), scale)
        if not linear:
            for i in range(n):
                if state[i] == SLIDING:  # leaves when its push changes sign (module docstring)
                    # its push with it released and the other sliding samples still held:
                    # x_i . P_{-i} v (inactive side) and x_i . P_{-i} (v + y_i x_i) (active side)
                    p_i = _projector(x, state, skip=i)
                    a_i = x[i] if p_i is None else p_i @ x[i]  # P_{-i} is symmetric: x_i . P v = (P x_i) . v
                    c_i = float(y[i] * (x[i] @ a_i))
                    scale = float(np.linalg.norm(a_i)) * v_scale + abs(c_i)
                    specs.append((i, -1.0, partial(_inactive_push, a_i, drive, hessian), scale))
                    specs.append((i, 1.0, partial(_active_push, a_i, c_i, drive, hessian), scale))
                else:
                    direction = -1.0 if state[i] == ACTIVE else 1.0
                    specs.append((i, direction, partial(_margin, x[i]), float(np.linalg.norm(x[i])) * w_scale))
        specs.append((-1, -1.0, partial(_gradient_gap, jac, shift, grad_tol), grad_tol))
        if np.linalg.norm(shift + jac @ w) <= grad_tol:
            flow.converged = True
            break
        events = [(i, _Event(fn, -direction * 1e-12 * scale, direction)) for i, direction, fn, scale in specs]
        sol = solve_ivp(
            rhs,
            (t0, t_max),
            w,
            method="LSODA",
            jac=lambda _t, _w, a=jac: a,
            events=[e for _, e in events],
            rtol=rtol,
            atol=atol,
            dense_output=True,
        )
        t_end = float(sol.t[-1])
        if t_end > t0:
            grid = np.concatenate(
                [
                    np.geomspace(max(t0, 1e-9), t_end, samples_per_piece),
                    np.linspace(t0, t_end, samples_per_piece + 1)[1:],
                ]
            )
            grid = np.unique(grid[(grid > t0) & (grid <= t_end)])
            flow.t = np.concatenate([flow.t, grid])
            flow.w = np.concatenate([flow.w, sol.sol(grid).T])
        w, t0 = sol.y[:, -1].copy(), t_end
        if sol.status != 1:  # reached t_max (or failed): stop
            break
        hit = [k for k, te in enumerate(sol.t_events) if len(te)]
        i = events[hit[0]][0]
        if i < 0:  # the gradient vanished
            flow.converged = True
            break
        before = state[i]
        if before == SLIDING:
            new = ACTIVE if events[hit[0]][1].direction > 0 else INACTIVE
        else:
            new = _state_after_crossing(w, x, y, state, i)
        state = state.copy()
        state[i] = new
        settled = _settle(w, x, y, state)
        for j in np.flatnonzero(settled != state).tolist():  # released sliding samples: step off their surface too
            side = 1.0 if settled[j] == ACTIVE else -1.0
            w = w + (side * 1e-12 * np.linalg.norm(w) * np.linalg.norm(x[j]) - x[j] @ w) * x[j] / (x[j] @ x[j])
            if settled[j] != ACTIVE:
                left.add(j)
        state = settled
        if new != SLIDING:
            # Step off the boundary by a relative 1e-12 on the side of the new pattern, so that the
            # next piece starts with w . x_i strictly signed (the event root finder needs a sign change).
            offset = 1e-12 * np.linalg.norm(w) * np.linalg.norm(x[i]) * (1.0 if new == ACTIVE else -1.0)
            w = w + (offset - x[i] @ w) * x[i] / (x[i] @ x[i])
        if before == ACTIVE and new != ACTIVE:
            left.add(i)
        elif before != ACTIVE and new == ACTIVE and i in left:
            flow.reactivations += 1
        flow.event_times.append(t0)
        flow.patterns.append(state == ACTIVE)
        flow.states.append(state.copy())
        flow.sliding = max(flow.sliding, int(np.sum(state == SLIDING)))
        flow.ever_sliding |= state == SLIDING
    return flow


def gradient_descent(
    x: np.ndarray, y: np.ndarray, w0: np.ndarray, t: float, lr: float, linear: bool = False
) -> np.ndarray:
    """Plain gradient descent w <- w - lr grad L(w) for ``t / lr`` steps (the flow's reference)."""
    w = np.asarray(w0, dtype=np.float64).copy()
    for _ in range(int(round(t / lr))):
        w -= lr * gradient(w, x, y, linear)
    return w
