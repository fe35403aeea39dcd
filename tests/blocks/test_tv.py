"""TV-regularised compressed sensing (blocks/physics/tv.py): adjoint pair, exact recovery of a
piecewise-constant image from enough Fourier samples, and lambda tuning on validation data."""

from __future__ import annotations

import torch

from components.blocks.physics.masks import variable_density_mask
from components.blocks.physics.operators import FourierSampling
from components.blocks.physics.tv import div, grad, tune_lambda, tv_norm, tv_reconstruct

torch.set_num_threads(1)


def blocks_image(size: int = 32) -> torch.Tensor:
    """A piecewise-constant image in [-1, 1]: two rectangles and a bar on a background."""
    x = torch.full((1, 1, size, size), -0.6)
    x[..., 4:14, 5:20] = 0.4
    x[..., 18:28, 10:26] = 0.9
    x[..., 8:26, 27:30] = -0.1
    return x


def test_div_is_minus_adjoint_of_grad() -> None:
    g = torch.Generator().manual_seed(0)
    x, q = torch.randn(2, 1, 9, 11, generator=g), torch.randn(2, 1, 2, 9, 11, generator=g)
    assert torch.allclose((grad(x) * q).sum(), -(x * div(q)).sum(), atol=1e-4)
    assert float(tv_norm(torch.ones(1, 1, 5, 5))) == 0.0


def test_tv_recovers_piecewise_constant_image_from_fourier_samples() -> None:
    x = blocks_image()
    op = FourierSampling(variable_density_mask(32, 32, 3.0, 0.08, torch.Generator().manual_seed(1)))
    y = op.A(x)
    zero_filled = op.A_adjoint(y)
    rec = tv_reconstruct(op, y, lam=1e-3, iters=1500)
    err_zf, err_tv = float((zero_filled - x).pow(2).mean()), float((rec - x).pow(2).mean())
    psnr_tv = 10 * torch.log10(torch.tensor(4.0 / err_tv))  # range [-1, 1]: peak-to-peak 2
    assert psnr_tv > 35, f"TV-CS {psnr_tv:.1f} dB on a piecewise-constant image"
    assert err_tv < err_zf / 100
    assert float((op.A(rec) - y).abs().max()) < 0.05  # (nearly) consistent with the samples


def test_tune_lambda_picks_a_middle_value_on_noisy_data() -> None:
    x = blocks_image()
    op = FourierSampling(variable_density_mask(32, 32, 2.0, 0.08, torch.Generator().manual_seed(2)))
    y = op.A(x)
    y = y + op.mask * 0.05 * torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=y.dtype)
    best, scores = tune_lambda(op, y, x, [1e-4, 3e-2, 10.0], iters=300)
    assert best == 3e-2 and scores[3e-2] < scores[1e-4] and scores[3e-2] < scores[10.0]
