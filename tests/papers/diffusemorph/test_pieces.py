"""DiffuseMorph's pieces against known answers: LNCC (its definition, MONAI's, exact cases), the
smoothness loss, the warp (identity, shifts, 3-D), folding on fields with a known fold, Dice on
known overlaps, the pair generator, the networks' shapes in 2-D and 3-D, and the config's 3-D preset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from components.papers.diffusemorph.config import DataConfig, DiffuseMorphConfig
from components.papers.diffusemorph.data import (
    intensity_labels,
    make_pairs,
    phantom_volume,
    random_field,
)
from components.papers.diffusemorph.evaluate import dice
from components.papers.diffusemorph.losses import gradient_loss, lncc
from components.papers.diffusemorph.model import build, warp
from components.papers.diffusemorph.predict import jacobian_determinant, jacobian_folding, resize_flow


def _lncc_by_definition(i: np.ndarray, t: np.ndarray, w: int = 9, eps: float = 1e-5) -> float:
    """Windowed squared NCC with explicit loops: zero padding, window sums over w x w, N = w^2."""
    pad = w // 2
    ip, tp = np.pad(i, pad), np.pad(t, pad)
    n = w * w
    vals = []
    for r in range(i.shape[0]):
        for c in range(i.shape[1]):
            a, b = ip[r : r + w, c : c + w], tp[r : r + w, c : c + w]
            cross = (a * b).sum() - a.sum() * b.sum() / n
            va, vb = (a * a).sum() - a.sum() ** 2 / n, (b * b).sum() - b.sum() ** 2 / n
            vals.append(cross * cross / (va * vb + eps))
    return float(np.mean(vals))


def _texture(rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 1.5) -> np.ndarray:
    x = gaussian_filter(rng.standard_normal(shape), sigma)
    return ((x - x.min()) / np.ptp(x)).astype(np.float64)


def test_lncc_matches_its_definition_and_exact_cases() -> None:
    rng = np.random.default_rng(0)
    a, b = _texture(rng, (20, 23)), _texture(rng, (20, 23))
    ours = float(lncc(torch.from_numpy(a)[None, None], torch.from_numpy(b * 2 - 1)[None, None]))
    assert ours == pytest.approx(_lncc_by_definition(a, b), rel=1e-6)
    # a scaled copy (positive or negative slope) correlates perfectly (squared NCC)
    for slope in (0.5, -0.7):  # no offset: the zero padding of both stays consistent
        same = float(lncc(torch.from_numpy(a)[None, None], torch.from_numpy(slope * a * 2 - 1)[None, None]))
        assert same == pytest.approx(1.0, abs=2e-3)
    # independent white noise: E[r^2] = 1 / (N - 1) = 1 / 80 in a full 9x9 window (the interior)
    x, y = rng.random((96, 96)), rng.random((96, 96))
    full = lncc(torch.from_numpy(x)[None, None], torch.from_numpy(y * 2 - 1)[None, None], reduce=False)
    assert 0.7 / 80 < float(full[..., 4:-4, 4:-4].mean()) < 1.3 / 80


def test_lncc_agrees_with_monai_where_variances_are_not_tiny() -> None:
    """MONAI's LocalNormalizedCrossCorrelationLoss (rectangular 9x9) clamps each variance at 1e-5
    instead of adding 1e-5 to their product (the official code): on textures the two agree."""
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    rng = np.random.default_rng(1)
    for shape in ((32, 32), (16, 16, 16)):
        a = torch.from_numpy(_texture(rng, shape)).float()[None, None]
        b = torch.from_numpy(_texture(rng, shape)).float()[None, None]
        monai = -float(LocalNormalizedCrossCorrelationLoss(spatial_dims=len(shape), kernel_size=9)(a, b))
        assert float(lncc(a, b * 2 - 1)) == pytest.approx(monai, abs=2e-3)


def test_gradient_loss_of_a_linear_field() -> None:
    h, w = 12, 10
    flow = torch.zeros(1, 2, h, w)
    flow[0, 0] = 0.3 * torch.arange(h, dtype=torch.float32)[:, None]  # d u_0 / d row = 0.3
    assert float(gradient_loss(flow)) == pytest.approx((0.3**2 / 2 + 0.0) / 2, rel=1e-6)
    assert float(gradient_loss(torch.full((1, 3, 4, 5, 6), 7.0))) == 0.0  # a constant field is free


def test_warp_identity_and_shifts_2d_3d() -> None:
    rng = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 16, 20, generator=rng)
    assert torch.allclose(warp(img, torch.zeros(2, 2, 16, 20)), img, atol=1e-6)
    shift = torch.zeros(2, 2, 16, 20)
    shift[:, 0], shift[:, 1] = 2.0, -3.0  # out(r, c) = img(r + 2, c - 3)
    out = warp(img, shift)
    assert torch.allclose(out[:, :, :-2, 3:], img[:, :, 2:, :-3], atol=1e-5)
    half = torch.zeros(1, 2, 16, 20)
    half[:, 1] = 0.5  # linear interpolation halfway between two columns
    assert torch.allclose(warp(img[:1], half)[..., :-1], (img[:1, ..., :-1] + img[:1, ..., 1:]) / 2, atol=1e-5)
    vol = torch.rand(1, 1, 8, 9, 10, generator=rng)
    assert torch.allclose(warp(vol, torch.zeros(1, 3, 8, 9, 10)), vol, atol=1e-6)
    for axis in range(3):
        flow = torch.zeros(1, 3, 8, 9, 10)
        flow[0, axis] = 1.0
        out = warp(vol, flow)
        keep = [slice(None)] * 5
        keep[2 + axis] = slice(0, -1)
        src = [slice(None)] * 5
        src[2 + axis] = slice(1, None)
        assert torch.allclose(out[tuple(keep)], vol[tuple(src)], atol=1e-5)


def test_resize_flow_keeps_the_map() -> None:
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0], flow[:, 1] = 1.0, -2.0
    big = resize_flow(flow, (16, 24))
    assert big.shape == (1, 2, 16, 24)
    assert torch.allclose(big[:, 0], torch.full((1, 16, 24), 2.0)) and torch.allclose(
        big[:, 1], torch.full((1, 16, 24), -6.0)
    )


def test_folding_on_known_fields() -> None:
    h, w = 24, 24
    assert jacobian_folding(np.zeros((2, h, w))) == 0.0
    rows = np.arange(h, dtype=np.float64)[:, None] * np.ones((1, w))
    flip = np.stack([-2.0 * rows, np.zeros((h, w))])  # x_r -> -x_r: det(I + grad u) = 1 - 2 = -1 everywhere
    assert jacobian_determinant(flip) == pytest.approx(np.full((h, w), -1.0))
    assert jacobian_folding(flip) == 100.0
    squeeze = np.stack([-0.5 * rows, np.zeros((h, w))])  # a compression, no fold: det = 0.5
    assert jacobian_folding(squeeze) == 0.0
    fold = np.zeros((2, h, w))
    fold[0, :, :12] = -2.0 * rows[:, :12]  # the left half flipped: half of the pixels fold
    assert jacobian_folding(fold) == pytest.approx(50.0)
    shear = np.stack([np.zeros((h, w)), 0.8 * rows])  # det(I + [[0, 0], [0.8, 0]]) = 1: a shear never folds
    assert jacobian_folding(shear) == 0.0
    d = 10
    vol = np.zeros((3, d, d, d))
    vol[2] = -3.0 * np.arange(d, dtype=np.float64)[None, None, :]  # 3-D: det = 1 - 3 = -2
    assert jacobian_determinant(vol) == pytest.approx(np.full((d, d, d), -2.0))
    assert jacobian_folding(vol) == 100.0


def test_dice_on_known_overlaps() -> None:
    lab = torch.zeros(20, 20, dtype=torch.long)
    lab[:10] = 1  # class 1: the top half
    assert dice(torch.zeros(2, 20, 20), lab, lab, 2) == pytest.approx(1.0)
    moved = torch.zeros(20, 20, dtype=torch.long)
    moved[4:14] = 1  # the same band 4 rows lower: overlap 6 rows of 10 -> Dice = 2 * 6 / (10 + 10)
    assert dice(torch.zeros(2, 20, 20), lab, moved, 2) == pytest.approx(0.6)
    band, lower = torch.zeros(20, 20, dtype=torch.long), torch.zeros(20, 20, dtype=torch.long)
    band[5:10], lower[9:14] = 1, 1  # overlap 1 row of 5: Dice 0.2 before the warp
    assert dice(torch.zeros(2, 20, 20), band, lower, 2) == pytest.approx(0.2)
    back = torch.zeros(2, 20, 20)
    back[0] = -4.0  # warped(r) = moving(r - 4): the band lands on rows 9..13
    assert dice(back, band, lower, 2) == pytest.approx(1.0)
    empty = torch.zeros(20, 20, dtype=torch.long)
    assert dice(torch.zeros(2, 20, 20), lab, empty, 2) == 0.0  # class 1 in one map only: Dice 0
    assert dice(torch.zeros(2, 20, 20), lab, lab, 3) == pytest.approx(1.0)  # class 2 in neither: not counted
    three = lab.clone()
    three[15:] = 2  # classes 1 (perfect) and 2 (missed by the moving map): mean (1 + 0) / 2
    assert dice(torch.zeros(2, 20, 20), lab, three, 3) == pytest.approx(0.5)


def test_random_fields_are_smooth_bounded_and_fold_free() -> None:
    cfg = DataConfig(size=32)
    rng = np.random.default_rng(0)
    for shape in ((32, 32), (32, 32, 16)):
        u = random_field(shape, cfg, rng)
        assert u.shape == (len(shape), *shape) and u.dtype == np.float32
        peak = np.abs(u).max()
        assert 0.5 * cfg.elastic_alpha - 1e-5 <= peak <= cfg.elastic_alpha + 1e-5
        assert jacobian_folding(u) == 0.0
        grads = np.abs(np.gradient(u[0])).max()
        assert grads < 0.5  # smooth: far from the slope -1 that would fold
    a, b = random_field((32, 32), cfg, np.random.default_rng(1)), random_field((32, 32), cfg, np.random.default_rng(2))
    assert np.abs(a - b).max() > 0.1  # independent draws differ


def test_labels_and_pairs() -> None:
    rng = np.random.default_rng(0)
    img = gaussian_filter(rng.random((32, 32)), 3)
    lab = intensity_labels(img, 3)
    assert set(np.unique(lab)) == {0, 1, 2}
    counts = np.bincount(lab.ravel())
    assert counts.min() > 0.25 * lab.size  # quantile classes: about a third each
    s = gaussian_filter(img, 1.0)
    assert s[lab == 2].min() >= s[lab == 0].max()  # ordered by (smoothed) intensity
    cfg = DataConfig(size=32, classes=3)
    bases = np.stack([(img - img.min()) / np.ptp(img), np.rot90((img - img.min()) / np.ptp(img))])
    pairs = make_pairs(bases, 4, cfg, rng)
    assert pairs["moving"].shape == pairs["fixed"].shape == (4, 32, 32)
    assert pairs["moving"].min() >= -1 - 1e-6 and pairs["moving"].max() <= 1 + 1e-6
    assert pairs["moving_label"].dtype == np.int64 and pairs["moving_label"].max() < 3
    for i in range(4):  # moving and fixed differ (two warps) but overlap well (small deformations)
        d = dice(
            torch.zeros(2, 32, 32),
            torch.from_numpy(pairs["moving_label"][i]),
            torch.from_numpy(pairs["fixed_label"][i]),
            3,
        )
        assert 0.5 < d < 1.0
        assert np.abs(pairs["moving"][i] - pairs["fixed"][i]).mean() > 1e-3


def test_phantom_volume() -> None:
    v = phantom_volume((16, 16, 32), np.random.default_rng(0))
    assert v.shape == (16, 16, 32) and v.dtype == np.float32
    assert v.min() == 0.0 and v.max() == pytest.approx(1.0)
    assert v[0, 0, 0] < 0.2 < v[8, 8, 16]  # background dark, body bright


def test_networks_in_2d_and_3d() -> None:
    model = {
        "block_out_channels": (8, 16),
        "layers_per_block": 1,
        "attention": True,
        "norm_num_groups": 4,
        "encoder_nc": (4, 8, 8, 8, 8),
        "decoder_nc": (8, 8, 8, 4, 4),
    }
    for shape in ((32, 32), (16, 16, 32)):
        score, field, base = build(model, shape[0], len(shape))
        x = torch.randn(2, 3, *shape)
        assert score(x, torch.tensor([0, 1999])).shape == (2, 1, *shape)
        warped, flow = field(x[:, :2])
        assert warped.shape == (2, 1, *shape) and flow.shape == (2, len(shape), *shape)
        # the official N(0, 0.02) init: the untrained field is nearly the identity
        assert flow.abs().max() < 0.1
        assert torch.allclose(warped, warp((x[:, :1] + 1) / 2, flow))


def test_3d_preset_fills_only_what_is_not_given() -> None:
    cfg = DiffuseMorphConfig(data={"dims": 3, "size": 16, "depth": 16}, train={"lr": 1e-3})
    assert cfg.train.loss_lambda == 20.0 and cfg.train.lr == 1e-3  # official 3-D lambda; the given lr
    assert cfg.model.encoder_nc == (16, 32, 32, 32, 32) and cfg.model.norm_num_groups == 4
    assert (cfg.data.size, cfg.data.depth) == (16, 16)
    assert DiffuseMorphConfig().train.loss_lambda == 2.0  # 2-D keeps the official 2-D value
    with pytest.raises(ValueError, match="data.depth"):
        DiffuseMorphConfig(data={"dims": 3, "size": 16, "depth": 24})


def test_he_init_lets_a_narrow_field_net_feel_its_second_input() -> None:
    """Why the CPU scales use ``field_init: he``: at widths 4 - 8 the official N(0, 0.02) init makes the
    flow's response to the score channel vanish (a variance gain of ~0.002 * C_in a layer); He init
    keeps it, while the untrained flow stays small (the output conv keeps N(0, 0.02))."""
    from components.papers.diffusemorph.model import RegistUNet

    x = torch.randn(4, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    bumped = x.clone()
    bumped[:, 1] += torch.randn(4, 32, 32, generator=torch.Generator().manual_seed(1))
    response = {}
    for init in ("normal", "he"):
        torch.manual_seed(0)
        net = RegistUNet(2, (4, 8, 8, 8, 8), (8, 8, 8, 4, 4), 2, init)
        with torch.no_grad():
            flow, flow2 = net(x)[1], net(bumped)[1]
        response[init] = float((flow2 - flow).abs().mean())
        assert float(flow.abs().max()) < 1.0
    assert response["he"] > 1000 * response["normal"]
