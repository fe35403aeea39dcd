"""Shared blocks for self-supervised vision: CIFAR ResNet-18, linear probe / k-NN, digits and torchvision data."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from components.blocks.data.vision import digits, load_split, random_resized_crop, resize, torchvision_dataset
from components.blocks.metrics.probe import embed, fit_linear_probe, knn_accuracy, knn_predict
from components.blocks.nn.resnet import projection_head, resnet18


@pytest.mark.parametrize(("cin", "width", "norm", "act"), [(1, 4, "none", "lrelu"), (3, 8, "batch", "relu")])
def test_resnet_shapes_and_layers(cin: int, width: int, norm: str, act: str) -> None:
    net = resnet18(cin, width, norm, act)
    out = net(torch.rand(2, cin, 16, 16))
    assert out.shape == (2, 8 * width) == (2, net.feature_dim)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert (len(bns) > 0) == (norm == "batch")
    acts = [m for m in net.modules() if isinstance(m, (nn.LeakyReLU, nn.ReLU))]
    assert acts and all(isinstance(a, nn.LeakyReLU) == (act == "lrelu") for a in acts)
    if act == "lrelu":
        assert all(a.negative_slope == 0.2 for a in acts)


def test_resnet18_paper_size() -> None:
    # CIFAR ResNet-18 with biases and no BN (the EBCLR encoder): ~11.2M parameters, 512-d features.
    net = resnet18(3, 64, "none")
    n = sum(p.numel() for p in net.parameters())
    assert net.feature_dim == 512 and 11.0e6 < n < 11.3e6
    with pytest.raises(ValueError, match="in_channels"):
        resnet18(2, 8)


def test_projection_head() -> None:
    head = projection_head(64, 16, "lrelu")
    assert head(torch.rand(5, 64)).shape == (5, 16)
    assert isinstance(head[1], nn.LeakyReLU) and head[0].out_features == 64


def _blobs(n: int, d: int, k: int, sep: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * sep
    y = torch.arange(n) % k
    return centres[y] + torch.randn(n, d, generator=g), y


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_linear_probe_separates_blobs(method: str) -> None:
    z, y = _blobs(400, 16, 4, 4.0, 0)
    zt, yt = _blobs(200, 16, 4, 4.0, 0)  # same centres (same seed), fresh noise draws differ by order only
    probe = fit_linear_probe(z * 10 + 3, y, 4, method, epochs=50 if method == "lbfgs" else 30)
    assert probe.accuracy(zt * 10 + 3, yt) > 0.95  # standardisation handles the scale and offset
    assert probe.weight.shape == (4, 16) and probe.logits(zt).shape == (200, 4)


def test_linear_probe_on_noise_is_chance() -> None:
    g = torch.Generator().manual_seed(1)
    z, zt = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g)
    y, yt = torch.randint(0, 5, (300,), generator=g), torch.randint(0, 5, (300,), generator=g)
    assert fit_linear_probe(z, y, 5).accuracy(zt, yt) < 0.35


def test_knn_cosine_vote() -> None:
    z, y = _blobs(200, 8, 5, 5.0, 2)
    assert knn_accuracy(z, y, z[:50] * 3.0, y[:50], 5) == 1.0  # cosine: invariant to the test vectors' scale
    # One test point: 2 neighbours of class 0 at cos 0.99, 1 of class 1 at cos 1.0; K=3 votes exp(s/T) pick 0.
    train = torch.tensor([[1.0, 0.0], [0.99, 0.141], [0.99, -0.141]])
    labels = torch.tensor([1, 0, 0])
    assert knn_predict(train, labels, torch.tensor([[1.0, 0.0]]), 2, k=3).item() == 0
    assert knn_predict(train, labels, torch.tensor([[1.0, 0.0]]), 2, k=1).item() == 1


def test_embed_restores_mode() -> None:
    net = resnet18(1, 4, "batch")
    net.train()
    z = embed(net, torch.rand(10, 1, 16, 16), batch_size=3)
    assert z.shape == (10, 32) and net.training


def test_digits_split() -> None:
    a, b = digits(16, 0.2, seed=0), digits(16, 0.2, seed=0)
    assert a.train_x.shape[1:] == (1, 16, 16) and len(a.train_y) + len(a.test_y) == 1797
    assert torch.equal(a.test_y, b.test_y) and torch.equal(a.train_x, b.train_x)
    assert 0 <= a.train_x.min() and a.train_x.max() <= 1 and a.n_classes == 10
    assert len(a.test_y) == 360 and set(a.test_y.tolist()) == set(range(10))  # stratified
    other = digits(16, 0.2, seed=1)
    assert not torch.equal(a.test_y, other.test_y)
    assert digits(28).train_x.shape[-1] == 28 and resize(a.train_x[:2], 8).shape[-1] == 8


def test_torchvision_missing_folder_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="never downloads"):
        torchvision_dataset("mnist", tmp_path / "nothing")
    with pytest.raises(ValueError, match="local folder"):
        load_split("cifar10", None)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    magic = 0x0800 | arr.ndim  # unsigned bytes, then the rank
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in arr.shape) + arr.tobytes())


def test_torchvision_mnist_from_local_folder(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,), dtype=np.uint8))
    split = torchvision_dataset("mnist", tmp_path, size=16)
    assert split.train_x.shape == (12, 1, 16, 16) and split.test_x.shape == (5, 1, 16, 16)
    assert split.train_y.dtype == torch.int64 and 0 <= split.train_x.min() and split.train_x.max() <= 1


def test_random_resized_crop() -> None:
    x = torch.rand(4, 1, 16, 16)
    same = random_resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(same, x, atol=1e-5)  # the full image at ratio 1 is the identity
    a = random_resized_crop(x, torch.Generator().manual_seed(3))
    b = random_resized_crop(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, x)
