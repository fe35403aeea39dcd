"""CLIPstyler's pieces against known answers: torchvision's perspective, the threshold rule, total
variation, the directional patch loss, StyleNet's shape and the VGG19 loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import RandomPerspective
from torchvision.transforms import functional as TF

from components.papers.clipstyler.losses import (
    content_loss,
    patch_loss,
    perspective,
    perspective_coeffs,
    random_patches,
    threshold_reject,
    tv_loss,
)
from components.papers.clipstyler.model import StyleNet, load_vgg, vgg_features_module


def test_batched_perspective_equals_torchvision_per_image() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 3, 16, 20)
    params = [RandomPerspective.get_params(20, 16, 0.5) for _ in range(6)]
    ref = torch.cat(
        [
            TF.perspective(x[i : i + 1], s, e, interpolation=TF.InterpolationMode.BILINEAR, fill=[0.0])
            for i, (s, e) in enumerate(params)
        ]
    )
    coeffs = perspective_coeffs(torch.tensor([p[0] for p in params]), torch.tensor([p[1] for p in params]))
    assert torch.allclose(perspective(x, coeffs), ref, atol=1e-4)
    identity = perspective_coeffs(torch.tensor([params[0][0]]), torch.tensor([params[0][0]]))
    assert torch.allclose(perspective(x[:1], identity), x[:1], atol=1e-5)  # start == end: the image itself


def test_random_patches_are_crops_and_differentiable() -> None:
    img = torch.arange(3 * 12 * 12, dtype=torch.float32).view(1, 3, 12, 12).requires_grad_(True)
    torch.manual_seed(1)
    crops = random_patches(img, 5, 4, augment=False)
    assert crops.shape == (5, 3, 4, 4)
    for c in crops.detach():  # every crop is a contiguous window of the image
        top, left = divmod(int(c[0, 0, 0]), 12)
        assert torch.equal(c, img.detach()[0, :, top : top + 4, left : left + 4])
    random_patches(img, 3, 4, augment=True).sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="larger than the image"):
        random_patches(img, 1, 13, augment=False)


def test_threshold_rejection_zeroes_the_patches_below_tau() -> None:
    losses = torch.tensor([0.2, 0.69, 0.7, 1.3])
    assert torch.equal(threshold_reject(losses, 0.7), torch.tensor([0.0, 0.0, 0.7, 1.3]))
    assert torch.equal(threshold_reject(losses, None), losses)


def test_patch_loss_is_zero_along_the_text_direction_and_two_against_it() -> None:
    direction = F.normalize(torch.tensor([1.0, 2.0, 0.0]), dim=0)
    src = torch.tensor([[0.0, 0.0, 1.0]])
    along = src + 0.5 * direction
    against = src - 0.5 * direction
    assert float(patch_loss(along, src, direction, None)) == pytest.approx(0.0, abs=1e-6)
    assert float(patch_loss(against, src, direction, None)) == pytest.approx(2.0, abs=1e-6)
    both = torch.cat([along, against])  # (0 + 2) / 2 without rejection; 0 is rejected anyway
    assert float(patch_loss(both, src, direction, 0.7)) == pytest.approx(1.0, abs=1e-6)


def test_total_variation_known_values() -> None:
    assert float(tv_loss(torch.ones(1, 3, 5, 5))) == 0.0
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 3, 4)  # x-steps of 1, no y-steps
    # dx: 3x3 ones; dy: 0; both diagonals: 2x3 entries of magnitude 1
    expected = 3.0 + 0.0 + 6**0.5 + 6**0.5
    assert float(tv_loss(ramp)) == pytest.approx(expected, rel=1e-6)


def test_content_loss_sums_layer_mses() -> None:
    a = [torch.zeros(1, 4), torch.zeros(2, 3)]
    b = [torch.ones(1, 4), torch.full((2, 3), 2.0)]
    assert float(content_loss(a, b)) == pytest.approx(1.0 + 4.0)


def test_stylenet_shape_range_and_size_check() -> None:
    net = StyleNet(16)
    y = net(torch.rand(2, 3, 16, 24))
    assert y.shape == (2, 3, 16, 24) and 0 < y.min() and y.max() < 1

    # the official UNet(ngf=16) (StyleNet.py), counted layer by layer; InstanceNorm2d has no affine
    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + cout

    def enc(cin: int, cout: int) -> int:  # conv3, conv3, 1x1 skip
        return conv(cin, cout, 3) + conv(cout, cout, 3) + conv(cin, cout, 1)

    official = (
        conv(3, 16, 1)
        + enc(16, 16)
        + sum(enc(a, b) + conv(b, b, 4) for a, b in ((16, 16), (16, 32), (32, 64)))  # down blocks
        + enc(64, 128)
        + sum(enc(a + b, b) for a, b in ((128, 64), (64, 32), (32, 16)))  # up blocks on the concatenation
        + enc(32, 16)
        + conv(16, 3, 1)
    )
    assert sum(p.numel() for p in net.parameters()) == official
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.rand(1, 3, 12, 16))


def test_vgg_loader_reads_a_torchvision_state_dict(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    feats = vgg_features_module()
    state = {f"features.{k}": v for k, v in feats.state_dict().items()}
    save_file(state, str(tmp_path / "vgg19.safetensors"))
    vgg = load_vgg(tmp_path / "vgg19.safetensors")
    out = vgg(torch.rand(1, 3, 32, 32))
    assert [o.shape[1] for o in out] == [512, 512]  # conv4_2, conv5_2
    torch.save({"0.weight": state["features.0.weight"]}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="VGG19"):
        load_vgg(tmp_path / "partial.pth")
