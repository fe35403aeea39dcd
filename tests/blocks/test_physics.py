"""Forward operators: adjointness <A x, y> = <x, A^T y>, projections, masks; phantoms and SWD."""

from __future__ import annotations

import pytest
import torch

from components.blocks.data.phantoms import phantoms
from components.blocks.metrics.distribution import sliced_wasserstein
from components.blocks.physics.masks import box_mask, cartesian_mask, variable_density_mask
from components.blocks.physics.operators import Downsample, FourierSampling, Masking, fft2c, ifft2c, project

G = torch.Generator().manual_seed(0)


def _ops():
    return {
        "downsample": Downsample(4),
        "masking": Masking(box_mask(32, 32, 0.5, G)[None, None]),
        "fourier_cartesian": FourierSampling(cartesian_mask(32, 32, 4, 0.08, G)),
        "fourier_vd": FourierSampling(variable_density_mask(32, 32, 4, 0.1, G)),
    }


def _inner(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u.conj() * v).real.sum() if u.is_complex() else (u * v).sum()


@pytest.mark.parametrize("name", list(_ops()))
def test_adjointness(name: str) -> None:
    op = _ops()[name]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 1, 32, 32, generator=gen, dtype=torch.float64)
    ax = op.A(x)
    if ax.is_complex():
        y = torch.complex(
            torch.randn(ax.shape, generator=gen, dtype=torch.float64),
            torch.randn(ax.shape, generator=gen, dtype=torch.float64),
        )
    else:
        y = torch.randn(ax.shape, generator=gen, dtype=torch.float64)
    lhs, rhs = _inner(ax, y), _inner(x, op.A_adjoint(y))
    assert abs(float(lhs - rhs)) < 1e-10 * max(1.0, abs(float(lhs)))


@pytest.mark.parametrize("name", list(_ops()))
def test_projection_is_consistent_and_non_expansive(name: str) -> None:
    op = _ops()[name]
    gen = torch.Generator().manual_seed(2)
    truth = torch.rand(2, 1, 32, 32, generator=gen, dtype=torch.float64)
    y = op.A(truth)
    u, v = (
        torch.randn(truth.shape, generator=gen, dtype=torch.float64),
        torch.randn(truth.shape, generator=gen, dtype=torch.float64),
    )
    pu, pv = project(u, y, op), project(v, y, op)
    assert float((pu - pv).norm()) <= float((u - v).norm()) + 1e-9  # non-expansive
    assert torch.allclose(project(truth, y, op), truth, atol=1e-10)  # the truth is a fixed point
    if name in ("downsample", "masking"):  # exact projections: A P(u) = y
        assert torch.allclose(op.A(pu), y, atol=1e-10)
    assert float((op.A(pu) - y).abs().norm()) < float((op.A(u) - y).abs().norm())


def test_fft_is_unitary_and_masks_have_their_rate() -> None:
    x = torch.randn(1, 1, 16, 24, dtype=torch.float64)
    assert torch.allclose(ifft2c(fft2c(x)).real, x) and abs(float(fft2c(x).abs().norm() - x.norm())) < 1e-9
    m = cartesian_mask(64, 64, 4, 0.08, G)
    assert m[:, 30:34].all() and abs(float(m.mean()) - 0.25) < 0.02 and (m == m[:1]).all()
    vd = variable_density_mask(64, 64, 4, 0.1, G)
    assert vd[32, 32] == 1 and abs(float(vd.mean()) - 0.25) < 0.05
    b = box_mask(32, 32, 0.5, G)
    assert float(b.mean()) == 1 - 0.25


def test_phantoms_and_swd() -> None:
    p = phantoms(4, 32, seed=0)
    assert p.shape == (4, 32, 32) and p.min() >= 0 and p.max() <= 1 and p.std() > 0.1
    assert not (p == phantoms(4, 32, seed=1)).all()
    a = torch.from_numpy(phantoms(8, 32, seed=2))[:, None]
    assert sliced_wasserstein(a, a) == 0.0
    blurred = torch.nn.functional.avg_pool2d(a, 3, stride=1, padding=1)
    noisy = (a + 0.01 * torch.randn(a.shape, generator=G)).clamp(0, 1)
    assert sliced_wasserstein(a, blurred) > sliced_wasserstein(a, noisy) > 0
