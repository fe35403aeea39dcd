"""Total-variation regularised reconstruction (the classical compressed-sensing baseline).

Solves, for any linear operator of ``components.blocks.physics.operators`` (A, A_adjoint)::

    min_x  1/2 || A x - y ||^2  +  lam * TV(x)  +  i_[lo, hi](x),     TV(x) = sum_i || (grad x)_i ||_2

(isotropic TV; Rudin, Osher & Fatemi 1992; as CS-MRI: Lustig, Donoho & Pauly 2007) with the
primal-dual hybrid gradient method of Chambolle & Pock 2011 (Algorithm 1, theta = 1), both terms
dualised through K = [A; grad]:

    p <- (p + sigma (A xb - y)) / (1 + sigma)          prox of sigma F*, F = 1/2 ||. - y||^2
    q <- proj_{||q_i|| <= lam}(q + sigma grad xb)      prox of sigma G*, G = lam ||.||_{2,1}
    x' <- clip(x - tau (A^T p - div q), lo, hi)        grad^T = -div
    xb <- 2 x' - x

with tau sigma ||K||^2 < 1; ||A|| <= 1 for the operators here and ||grad||^2 <= 8, so
tau = sigma = 0.99 / 3. ``tune_lambda`` picks lam on validation images (never on test images).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def grad(x: torch.Tensor) -> torch.Tensor:
    """Forward differences with Neumann boundary: ``(B, C, H, W) -> (B, C, 2, H, W)``."""
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(x)
    gy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    gx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return torch.stack([gy, gx], dim=2)


def div(q: torch.Tensor) -> torch.Tensor:
    """Minus the adjoint of ``grad``: ``<grad x, q> = -<x, div q>``; ``(B, C, 2, H, W) -> (B, C, H, W)``."""
    qy, qx = q[:, :, 0], q[:, :, 1]
    dy = torch.zeros_like(qy)
    dx = torch.zeros_like(qx)
    dy[..., 0, :] = qy[..., 0, :]
    dy[..., 1:-1, :] = qy[..., 1:-1, :] - qy[..., :-2, :]
    dy[..., -1, :] = -qy[..., -2, :]
    dx[..., :, 0] = qx[..., :, 0]
    dx[..., :, 1:-1] = qx[..., :, 1:-1] - qx[..., :, :-2]
    dx[..., :, -1] = -qx[..., :, -2]
    return dy + dx


def tv_norm(x: torch.Tensor) -> torch.Tensor:
    """Isotropic TV per image, ``(B,)``."""
    return grad(x).pow(2).sum(2).sqrt().flatten(1).sum(1)


@torch.no_grad()
def tv_reconstruct(
    op,
    y: torch.Tensor,
    lam: float,
    *,
    iters: int = 300,
    x0: torch.Tensor | None = None,
    bounds: tuple[float, float] | None = (-1.0, 1.0),
) -> torch.Tensor:
    """TV-regularised least squares by Chambolle-Pock (see the module docstring).

    Args:
        op: forward operator with ``A``, ``A_adjoint`` and ``dc_pinv`` (``||A|| <= 1``).
        y: the measurement ``A x`` (real or complex, per image).
        lam: the TV weight (in the units of the data term).
        iters: PDHG iterations.
        x0: start ``(B, C, H, W)``; default ``op.dc_pinv(y)`` (bicubic-free upsampling / masked
            image / zero-filled).
        bounds: box constraint on x (the image range), or None.

    Returns:
        ``(B, C, H, W)`` real reconstruction.
    """
    x = (op.dc_pinv(y) if x0 is None else x0).real.float().clone()
    if bounds is not None:
        x = x.clamp(*bounds)
    tau = sigma = 0.99 / 3.0
    p = torch.zeros_like(op.A(x))
    q = torch.zeros_like(grad(x))
    xb = x.clone()
    for _ in range(iters):
        p = (p + sigma * (op.A(xb) - y)) / (1 + sigma)
        q = q + sigma * grad(xb)
        q = q / (q.pow(2).sum(2, keepdim=True).sqrt() / max(lam, 1e-12)).clamp(min=1.0)
        x_new = x - tau * (op.A_adjoint(p).to(x.dtype) - div(q))
        if bounds is not None:
            x_new = x_new.clamp(*bounds)
        xb = 2 * x_new - x
        x = x_new
    return x


def tune_lambda(
    op,
    y: torch.Tensor,
    truth: torch.Tensor,
    lams: Sequence[float],
    *,
    iters: int = 300,
    bounds: tuple[float, float] | None = (-1.0, 1.0),
) -> tuple[float, dict[float, float]]:
    """The lam of ``lams`` with the lowest mean squared error to ``truth`` on validation data.

    Returns:
        ``(best lam, {lam: mse})``.
    """
    scores = {
        float(lam): float((tv_reconstruct(op, y, lam, iters=iters, bounds=bounds) - truth).pow(2).mean())
        for lam in lams
    }
    return min(scores, key=scores.__getitem__), scores
