"""Shared blocks: the U-Net, bundled and folder images, splits, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from components.blocks.data.images import (
    SKIMAGE_IMAGES,
    center_crop,
    folder_images,
    random_patches,
    skimage_images,
    split_by_image,
    to_rgb_float,
)
from components.blocks.metrics.image import psnr, psnr_per_image, ssim
from components.blocks.nn.unet import N2NUNet, pad_to_multiple


@pytest.mark.parametrize(("width", "depth"), [(8, 1), (8, 2), (16, 3), (48, 5)])
def test_unet_shapes(width: int, depth: int) -> None:
    net = N2NUNet(3, 3, width, depth)
    x = torch.rand(2, 3, 2**depth * 2, 2**depth * 3)
    assert net(x).shape == x.shape


def test_paper_unet_size() -> None:
    # The official UNet (width 48, depth 5) with separate weights per level.
    n = sum(p.numel() for p in N2NUNet(3, 3, 48, 5).parameters())
    assert 1.0e6 < n < 1.5e6


def test_pad_to_multiple() -> None:
    x = torch.rand(1, 3, 13, 30)
    padded, (h, w) = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (16, 32) and (h, w) == (13, 30)
    assert torch.equal(padded[..., :13, :30], x)


def test_bundled_images_and_split() -> None:
    images = dict(skimage_images(["astronaut", "camera", "coins"]))
    assert all(im.dtype == np.float32 and im.ndim == 3 and im.shape[2] == 3 for im in images.values())
    assert all(0 <= im.min() and im.max() <= 1 for im in images.values())
    train, held = split_by_image(sorted(images), 1, seed=0)
    assert not set(train) & set(held) and len(held) == 1 and len(train) == 2
    assert split_by_image(sorted(images), 1, seed=0) == (train, held)
    with pytest.raises(ValueError):
        split_by_image(["a"], 1, seed=0)
    with pytest.raises(ValueError, match="no image"):
        skimage_images(["no_such_image"])


def test_folder_loader(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.full((10, 12, 3), 255, np.uint8)).save(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    loaded = folder_images(tmp_path)
    assert [n for n, _ in loaded] == ["a.jpg", "b.png"]
    assert all(im.shape == (10, 12, 3) for _, im in loaded)
    with pytest.raises(FileNotFoundError):
        folder_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no"):
        folder_images(tmp_path / "empty")


def test_patches_and_crops() -> None:
    im = to_rgb_float(np.arange(40 * 50, dtype=np.uint16).reshape(40, 50))
    p = random_patches(im, 16, 5, torch.Generator().manual_seed(0))
    assert p.shape == (5, 16, 16, 3)
    assert center_crop(im, 32).shape == (32, 32, 3) and center_crop(im, 100).shape == (40, 40, 3)
    with pytest.raises(ValueError):
        random_patches(im, 64, 1, torch.Generator())


def test_metrics() -> None:
    x = torch.rand(1, 3, 32, 32)
    assert psnr(x, x) > 80 and ssim(x, x) == pytest.approx(1.0)
    noisy = x + 0.1 * torch.randn_like(x)
    assert 15 < psnr(noisy, x) < 25 and ssim(noisy, x) < 0.95


def test_psnr_known_values_and_batching() -> None:
    x = torch.full((2, 3, 16, 16), 0.5)
    err = torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
    # MSE 1e-2 -> 20 dB, MSE 1e-4 -> 40 dB; the batch value is the mean of per-image PSNRs.
    assert psnr_per_image(x + err, x).tolist() == pytest.approx([20.0, 40.0], abs=1e-3)
    assert psnr(x + err, x) == pytest.approx(30.0, abs=1e-3)
    assert psnr(torch.full_like(x, 2.0), torch.ones_like(x)) > 80  # predictions are clipped to [0, 1]
    with pytest.raises(ValueError, match="one shape"):
        psnr(x, x[:1])


def test_every_listed_skimage_image_loads_offline() -> None:
    loaded = skimage_images(SKIMAGE_IMAGES)
    assert [n for n, _ in loaded] == list(SKIMAGE_IMAGES)
    assert all(im.dtype == np.float32 and im.shape[2] == 3 and min(im.shape[:2]) >= 128 for _, im in loaded)


def test_bundled_images_are_distinct() -> None:
    # skimage.data.cat() is chelsea(): a duplicate would put one picture on both sides of a split.
    loaded = skimage_images(SKIMAGE_IMAGES)
    for i, (n1, a) in enumerate(loaded):
        for n2, b in loaded[i + 1 :]:
            assert a.shape != b.shape or not np.allclose(a, b, atol=1e-3), (n1, n2)
