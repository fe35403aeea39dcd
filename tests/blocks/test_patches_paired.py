"""The photo-patch classification task and the paired accuracy statistics (blocks used by EBCLR)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.blocks.data.patches import photo_patches, standardize_patches
from components.blocks.metrics.paired import accuracy_estimate, mean_se, paired_difference


def _images() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    # left half of each picture is 0.2, right half 0.8: a held-out right strip must only show 0.8
    out = []
    for k in range(3):
        im = np.full((40, 100, 3), 0.2, np.float32)
        im[:, 50:] = 0.8
        out.append((f"im{k}", np.clip(im + 0.01 * k + 0.001 * rng.standard_normal(im.shape), 0, 1).astype(np.float32)))
    return out


def test_photo_patches_split_and_labels() -> None:
    split, names = photo_patches(
        patch=8, size=8, scale=1.0, n_train=5, n_test=4, holdout=0.3, standardize=False, images=_images()
    )
    assert names == ["im0", "im1", "im2"] and split.n_classes == 3
    assert split.train_x.shape == (15, 1, 8, 8) and split.test_x.shape == (12, 1, 8, 8)
    assert (
        split.train_y.tolist() == [0] * 5 + [1] * 5 + [2] * 5 and split.test_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    )
    assert (split.test_x > 0.7).all()  # test patches come from the right strip (x >= 70) only
    assert (split.train_x.amax(dim=(1, 2, 3)) < 0.85).all()
    again, _ = photo_patches(patch=8, size=8, scale=1.0, n_train=5, n_test=4, standardize=False, images=_images())
    assert torch.equal(again.train_x, split.train_x)  # fixed by the seed


def test_standardize_removes_brightness_and_contrast() -> None:
    x = 0.3 * torch.rand(1, 1, 8, 8)
    s = standardize_patches(x)
    assert torch.allclose(s, 0.5 + 0.2 * (x - x.mean()) / (x.std() + 0.05), atol=1e-6)  # the formula (none clamped)
    assert torch.allclose(standardize_patches(x + 0.4), s, atol=1e-5)  # brightness is gone
    strong = standardize_patches(torch.cat([x * 0.5, x, x * 2]))  # contrast is equalised up to the floor
    assert torch.allclose(strong.mean(dim=(1, 2, 3)), torch.full((3,), 0.5), atol=1e-5)
    sd = strong.std(dim=(1, 2, 3))
    assert (sd < 0.2).all() and sd[2] / sd[0] < 2.0  # x4 contrast in, less than x2 out
    assert torch.allclose(
        standardize_patches(torch.full((1, 1, 4, 4), 0.9)), torch.full((1, 1, 4, 4), 0.5)
    )  # flat: flat


def test_accuracy_estimate_combines_seeds_and_test_set() -> None:
    rng = np.random.default_rng(0)
    c = (rng.random((3, 400)) < 0.6).astype(float)
    e = accuracy_estimate(c)
    per_seed = c.mean(1)
    assert e.mean == pytest.approx(per_seed.mean()) and e.seeds == 3
    assert e.se_seeds == pytest.approx(per_seed.std(ddof=1) / np.sqrt(3))
    assert e.se_test == pytest.approx(np.sqrt(e.mean * (1 - e.mean) / 400))
    assert e.half_width == pytest.approx(np.hypot(4.302653 * e.se_seeds, 1.959964 * e.se_test), rel=1e-5)


def test_paired_difference() -> None:
    rng = np.random.default_rng(1)
    base = (rng.random((4, 500)) < 0.5).astype(float)
    better = base.copy()
    flip = rng.random((4, 500)) < 0.2
    better[flip] = 1.0  # a sure improvement on a fifth of the images
    d = paired_difference(better, base)
    assert d.mean > 0 and d.beyond_noise
    same = paired_difference(base, base)
    assert same.mean == 0 and not same.beyond_noise
    noisy = paired_difference((rng.random((3, 50)) < 0.5).astype(float), (rng.random((3, 50)) < 0.5).astype(float))
    assert not noisy.beyond_noise  # two coin flips on 50 images: inside noise
    with pytest.raises(ValueError, match="one shape"):
        paired_difference(base, base[:, :10])
    one = paired_difference(better[:1], base[:1])
    assert not np.isfinite(one.half_width)  # one seed: no interval


def test_mean_se_by_hand() -> None:
    """[1, 2, 3, 6]: mean 3, sample sd sqrt(14/3), SE sd / 2; one value has no SE."""
    mean, se = mean_se(np.array([1.0, 2.0, 3.0, 6.0]))
    assert mean == pytest.approx(3.0)
    assert se == pytest.approx(np.sqrt(14 / 3) / 2)
    assert np.isnan(mean_se(np.array([4.0]))[1])
