"""Fractional steepest descent on a quadratic: where the fractional gradient points.

For J(w) = 1/2 sum_k a_k (w_k - w*_k)^2 (a diagonal quadratic, so every coordinate is its own 1-D
problem) the fractional learning literature uses two "fractional gradients":

1. the chain-rule form that FLMS is built on: dJ/dw (.) D^f w = a (w - w*) (.) w^(1-f) / Gamma(2-f)
   (``chain_rule_gradient``). It vanishes at w* but ALSO at w = 0: a weight initialised at zero (the
   usual choice) never moves, and one that crosses zero stalls there.
2. the Caputo derivative of J itself with lower terminal 0 (``caputo_gradient``):
   D^f J(w) = a (w^(2-f) / Gamma(3-f) - w* w^(1-f) / Gamma(2-f))   for w > 0,
   using D^f w^p = Gamma(p+1) / Gamma(p+1-f) w^(p-f) and D^f const = 0. Its zero is
   w = w* Gamma(3-f) / Gamma(2-f) = (2 - f) w*: the iteration converges, but to the wrong point
   (for f = 1 it is ordinary gradient descent and the point is w*).

Both are kinks of the kind the paper identifies; ``descend`` runs either, vectorised over orders.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import gamma

Kind = Literal["gradient", "chain_rule", "caputo"]


def chain_rule_gradient(w: np.ndarray, w_star: np.ndarray, a: np.ndarray, f: np.ndarray) -> np.ndarray:
    """a (w - w*) |w|^(1-f) / Gamma(2-f) (the remedied |w| form, defined for every sign)."""
    return a * (w - w_star) * np.abs(w) ** (1 - f) / gamma(2 - f)


def caputo_gradient(w: np.ndarray, w_star: np.ndarray, a: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Caputo D^f J at w > 0 with lower terminal 0 (NaN for w < 0, where it is not real)."""
    with np.errstate(invalid="ignore"):
        return a * (np.power(w, 2 - f) / gamma(3 - f) - w_star * np.power(w, 1 - f) / gamma(2 - f))


def caputo_fixed_point(w_star: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Where Caputo fractional descent stops: (2 - f) w* (the zero of ``caputo_gradient``)."""
    return (2 - f) * w_star


def descend(
    kind: Kind, w0: np.ndarray, w_star: np.ndarray, a: np.ndarray, orders: np.ndarray, step: float, iterations: int
) -> np.ndarray:
    """Run w <- w - step * grad(w) for every order at once.

    Args:
        w0, w_star, a: (M,) start, minimiser and curvatures.
        orders: (F,) fractional orders f in (0, 1].
    Returns:
        (F, iterations + 1, M) trajectories.
    """
    f = np.asarray(orders, dtype=np.float64)[:, None]
    w = np.broadcast_to(np.asarray(w0, dtype=np.float64), (len(f), len(w0))).copy()
    out = np.empty((len(f), iterations + 1, len(w0)))
    out[:, 0] = w
    for n in range(iterations):
        if kind == "gradient":
            g = a * (w - w_star)
        elif kind == "chain_rule":
            g = chain_rule_gradient(w, w_star, a, f)
        else:
            g = caputo_gradient(w, w_star, a, f)
        w = w - step * g
        out[:, n + 1] = w
    return out
