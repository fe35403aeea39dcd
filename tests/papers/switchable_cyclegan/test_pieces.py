"""Each algorithmic piece against a known answer: AdaIN switch, image pool, blur operator, losses, phantom."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from components.papers.switchable_cyclegan.adain import SharedCode, SwitchableNorm
from components.papers.switchable_cyclegan.blur import AxisBlur, gaussian_kernel
from components.papers.switchable_cyclegan.losses import generator_loss, lsgan_discriminator, lsgan_generator
from components.papers.switchable_cyclegan.model import Discriminator, Generator, space_to_depth
from components.papers.switchable_cyclegan.paired import elevational_sharpness, paired
from components.papers.switchable_cyclegan.phantom import clean_volume, degrade, planes
from components.papers.switchable_cyclegan.pool import ImagePool


def _norm_and_code():
    torch.manual_seed(0)
    layer, code = SwitchableNorm(6, 8), SharedCode(8)()
    with torch.no_grad():  # make sure sigma is not all zeros after the ReLU
        layer.fc_sigma.bias.fill_(0.7)
    return layer, code, torch.randn(3, 6, 5, 7) * 4 + 2


def test_adain_alpha0_is_instance_norm_and_alpha1_the_affine_form() -> None:
    layer, code, x = _norm_and_code()
    mean, var = x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), unbiased=False, keepdim=True)
    h = (x - mean) / torch.sqrt(var + 1e-5)  # InstanceNorm2d by hand
    torch.testing.assert_close(layer(x, code, 0.0), h)
    mu = layer.fc_mean(code).view(1, 6, 1, 1)
    sigma = torch.relu(layer.fc_sigma(code)).view(1, 6, 1, 1)
    torch.testing.assert_close(layer(x, code, 1.0), sigma * h + mu)
    torch.testing.assert_close(layer(x, code, 0.3), 0.3 * (sigma * h + mu) + 0.7 * h)
    per_sample = layer(x, code, torch.tensor([0.0, 1.0, 0.3]))
    torch.testing.assert_close(per_sample[1], (sigma * h + mu)[1])
    assert SwitchableNorm(6, 8, heads=False)(x, code, 1.0).allclose(h, atol=1e-5)  # baseline: plain IN


def test_generator_shares_one_code_and_switches() -> None:
    torch.manual_seed(0)
    g = Generator(width=4, depth=2, code_dim=8)
    assert sum(isinstance(m, SharedCode) for m in g.modules()) == 1
    x = torch.rand(2, 1, 16, 16)
    y0, y1 = g(x, 0.0), g(x, 1.0)
    assert y0.shape == x.shape and not torch.allclose(y0, y1)
    with torch.no_grad():
        g.out.weight.zero_(), g.out.bias.zero_()
    torch.testing.assert_close(g(x, 0.5), x)  # global residual: f = 0 gives the identity
    with pytest.raises(ValueError):
        g(torch.rand(1, 1, 15, 16))
    assert Discriminator(4, 2)(x).shape == (2, 1, 4, 4)
    s = space_to_depth(torch.arange(16.0).view(1, 1, 4, 4))
    assert s.shape == (1, 4, 2, 2) and s[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]


def test_image_pool_fills_then_swaps() -> None:
    gen = torch.Generator().manual_seed(0)
    pool = ImagePool(3, prob=0.0)  # once full: always return a stored image and keep the new one
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first, gen), first) and torch.equal(pool.images, first)
    new = torch.full((2, 1, 1, 1), 9.0)
    out = pool.query(new, gen)
    assert set(out.flatten().tolist()) <= {0.0, 1.0, 2.0, 9.0} and 9.0 in pool.images.flatten().tolist()
    assert (
        pool.images.shape[0] == 3 and out.flatten().tolist().count(9.0) <= 1
    )  # 9 returned only if swapped in then drawn
    always_new = ImagePool(2, prob=1.0)
    always_new.query(first[:2], gen)
    assert torch.equal(always_new.query(new, gen), new) and torch.equal(always_new.images, first[:2])
    assert torch.equal(ImagePool(0).query(new, gen), new)
    a, b = ImagePool(2, 0.5), ImagePool(2, 0.5)
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for i in range(5):
        batch = torch.full((2, 1, 1, 1), float(i))
        assert torch.equal(a.query(batch, ga), b.query(batch, gb))
    c = ImagePool(2, 0.5)
    c.load(a.state(), torch.device("cpu"))
    assert torch.equal(c.images, a.images)


def test_blur_matches_scipy_and_is_self_adjoint() -> None:
    k = gaussian_kernel(1.3)
    assert len(k) == 2 * 4 + 1 and abs(float(k.sum()) - 1) < 1e-6
    x = torch.rand(2, 9, 13, dtype=torch.float64).float()
    op = AxisBlur(1.3, axis=1)
    ref = gaussian_filter1d(x.double().numpy(), 1.3, axis=1, mode="constant", truncate=4 / 1.3)
    np.testing.assert_allclose(op.A(x).numpy(), ref, atol=1e-6)
    y = torch.rand_like(x)
    assert abs(float((op.A(x) * y).sum() - (x * op.A_adjoint(y)).sum())) < 1e-4
    delta = torch.zeros(1, 21, 1)
    delta[0, 10, 0] = 1
    torch.testing.assert_close(op.A(delta)[0, 6:15, 0], k)
    assert op.psf2d().shape == (9, 1)
    refl = AxisBlur(1.3, axis=0, mode="reflect").A(torch.ones(12, 5))
    torch.testing.assert_close(refl, torch.ones(12, 5))  # reflect padding keeps a constant image


def test_lsgan_and_generator_loss_known_values() -> None:
    ones, zeros = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    assert float(lsgan_generator(ones)) == 0.0 and float(lsgan_generator(zeros)) == 1.0
    assert float(lsgan_discriminator(ones, zeros)) == 0.0 and float(lsgan_discriminator(zeros, ones)) == 1.0
    a, b = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    ident = lambda t: t  # noqa: E731
    total, parts = generator_loss(
        a, b, ident, ident, lambda t: torch.zeros(2, 1), lambda t: torch.zeros(2, 1), 1, 10, 5
    )
    assert float(parts["cycle"]) == 0 and float(parts["identity"]) == 0 and float(total) == pytest.approx(2.0)
    shift = lambda t: t + 0.1  # noqa: E731
    total, parts = generator_loss(a, b, shift, ident, lambda t: torch.ones(1), lambda t: torch.ones(1), 1, 10, 5)
    # cycle: |a+0.1-a| + |b+0.1-b| = 0.2; identity: |b+0.1-b| + 0 = 0.1
    assert float(parts["cycle"]) == pytest.approx(0.2) and float(total) == pytest.approx(10 * 0.2 + 5 * 0.1)


def test_phantom_degrades_only_elevationally() -> None:
    gen = torch.Generator().manual_seed(0)
    truth = clean_volume(24, gen)
    assert truth.shape == (24, 24, 24) and 0 <= float(truth.min()) and float(truth.max()) <= 1
    deg = degrade(truth, 2.0, 0.0, gen)
    ep = torch.stack(planes(deg, "elevational"))[:, None]
    et = torch.stack(planes(truth, "elevational"))[:, None]
    assert float(elevational_sharpness(ep).mean()) < 0.5 * float(elevational_sharpness(et).mean())
    # along the other in-plane axis (columns) the elevational planes keep most of their detail
    col = lambda v: float((v[..., 1:] - v[..., :-1]).pow(2).mean())  # noqa: E731
    assert col(ep) > 0.2 * col(et)
    assert len(planes(truth, "all")) == 72


def test_paired_se_uses_the_larger_of_slice_and_volume() -> None:
    diff = np.array([1.0, 1.0, 3.0, 3.0])
    out = paired(diff, np.array([0, 0, 1, 1]))
    assert out["mean"] == 2.0 and out["se_volume"] == pytest.approx(1.0) and out["se"] == pytest.approx(1.0)
    assert out["se_slice"] == pytest.approx(np.std(diff, ddof=1) / 2)


def test_richardson_lucy_with_the_true_psf_improves_a_blurred_slice() -> None:
    from components.blocks.metrics.image import psnr
    from components.papers.switchable_cyclegan.evaluate import richardson_lucy

    gen = torch.Generator().manual_seed(0)
    truth = clean_volume(32, gen, 1.5)
    deg = degrade(truth, 1.5, 0.0, gen)
    x, y = deg[:, 8:10, :].permute(1, 0, 2)[:, None], truth[:, 8:10, :].permute(1, 0, 2)[:, None]
    restored = richardson_lucy(x, AxisBlur(1.5).psf2d(), 10)
    assert restored.shape == x.shape and psnr(restored, y) > psnr(x, y) + 1.0
