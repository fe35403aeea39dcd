"""DiffuseMorph's losses, pure functions (official model/diffusion_net_2D/loss.py and diffusion.py).

Total loss (official ``GaussianDiffusion.p_losses``; paper Eq. 7-9):

    L = || eps - eps_theta([M, F, x_t], t) ||^2                       (l_pix, MSE: loss_type 'l2')
        + lambda * ( -LNCC_9x9( phi o M, F ) )                         (l_sim)
        + lambda * ( mean |d_H phi|^2 + mean |d_W phi|^2 ) / 2         (l_smt, gradientLoss('l2'))

LNCC is the official ``crossCorrelation2D``: window sums over a 9x9 box (zero padding), squared
correlation ``cross^2 / (var_T var_I + 1e-5)``, mean over pixels, with the target F mapped from
[-1, 1] to [0, 1] (the warped moving image is already in [0, 1]). MONAI's
LocalNormalizedCrossCorrelationLoss is the same squared NCC but clamps the variances at its
``smooth_dr`` instead of adding 1e-5 to their product, so this file keeps the official epsilon.
tests/papers/diffusemorph/test_pieces.py checks it against its definition (explicit windows),
against MONAI's on textures, and on exact cases (a scaled copy: 1; independent noise: 1/80).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lncc(
    warped01: torch.Tensor, fixed: torch.Tensor, window: int = 9, eps: float = 1e-5, reduce: bool = True
) -> torch.Tensor:
    """Mean squared local NCC (official crossCorrelation2D/3D, positive: 1 = identical up to affine).

    Args:
        warped01: ``(B, 1, *S)`` warped moving image in [0, 1], ``S`` 2-D or 3-D.
        fixed: same shape, in [-1, 1] (mapped to [0, 1] here, as the official code does).
        reduce: the mean (the loss); False: the per-pixel map ``(B, 1, *S)``.
    """
    target = (fixed + 1) / 2
    nd = warped01.dim() - 2
    filt = torch.ones((1, 1, *([window] * nd)), dtype=warped01.dtype, device=warped01.device)
    conv = F.conv2d if nd == 2 else F.conv3d
    pad = (window - 1) // 2

    def box(x: torch.Tensor) -> torch.Tensor:
        return conv(x, filt, padding=pad)

    i, t = warped01, target
    n = float(window**nd)
    i_sum, t_sum = box(i), box(t)
    ii, tt, it = box(i * i), box(t * t), box(i * t)
    i_hat, t_hat = i_sum / n, t_sum / n
    cross = it - i_hat * t_sum - t_hat * i_sum + t_hat * i_hat * n
    t_var = tt - 2 * t_hat * t_sum + t_hat * t_hat * n
    i_var = ii - 2 * i_hat * i_sum + i_hat * i_hat * n
    cc = cross * cross / (t_var * i_var + eps)
    return cc.mean() if reduce else cc


def gradient_loss(flow: torch.Tensor) -> torch.Tensor:
    """Official gradientLoss('l2'): mean of squared forward differences of the flow, averaged over axes."""
    nd = flow.dim() - 2
    terms = []
    for ax in range(2, 2 + nd):
        d = flow.narrow(ax, 1, flow.shape[ax] - 1) - flow.narrow(ax, 0, flow.shape[ax] - 1)
        terms.append((d * d).mean())
    return sum(terms) / nd  # type: ignore[return-value]


def registration_loss(
    warped01: torch.Tensor, fixed: torch.Tensor, flow: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lambda * -LNCC, lambda * grad)``: l_sim and l_smt of the official p_losses."""
    return -lncc(warped01, fixed) * lam, gradient_loss(flow) * lam


def diffusion_loss(eps: torch.Tensor, eps_hat: torch.Tensor) -> torch.Tensor:
    """l_pix: MSE(eps, eps_hat) (official loss_type 'l2'; DDPM Eq. 14)."""
    return F.mse_loss(eps_hat, eps)
