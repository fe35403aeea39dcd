"""Serving-side inference: embeddings of the frozen EBCLR encoder and the linear probe's classes.

Images are numeric numpy arrays in [0, 1]: ``(H, W)`` one grey image, ``(N, H, W)`` a batch of grey
images, ``(N, H, W, C)`` a batch with C = 1 or 3. They are resized (bilinear) to the model's side,
converted to its channels (grey repeated to RGB, RGB averaged to grey), standardised per image when
the model was trained on standardised patches, and mapped to [-1, 1] as in training. Bounds: at most
``MAX_BATCH`` images, sides in [``MIN_SIDE``, ``MAX_SIDE``].
"""

from __future__ import annotations

import numpy as np
import torch

from components.blocks.data.patches import standardize_patches
from components.blocks.data.vision import resize
from components.papers.ebclr.data import to_input
from components.papers.ebclr.model import EBCLRModel

MAX_BATCH = 256
MIN_SIDE, MAX_SIDE = 4, 512


def prepare_batch(model: EBCLRModel, images: np.ndarray) -> torch.Tensor:
    """Validate and convert ``images`` to the network input ``(N, C, S, S)`` float32 in [-1, 1].

    Raises:
        ValueError: wrong dtype, rank, channel count, size, batch length or values outside [0, 1].
    """
    arr = np.asarray(images)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"images must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[3] not in (1, 3):
        raise ValueError(
            f"images must be (H, W), (N, H, W) or (N, H, W, C) with C 1 or 3, got shape {np.shape(images)}"
        )
    n, h, w, _ = arr.shape
    if not 1 <= n <= MAX_BATCH:
        raise ValueError(f"between 1 and {MAX_BATCH} images per request, got {n}")
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise ValueError(f"image sides must be in [{MIN_SIDE}, {MAX_SIDE}], got {h}x{w}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise ValueError("pixel values must be finite and in [0, 1]")
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    if x.shape[1] != model.in_channels:
        x = x.mean(dim=1, keepdim=True) if model.in_channels == 1 else x.expand(-1, 3, -1, -1)
    x = resize(x, model.image_size).contiguous()
    if model.config.get("patch_standardize"):  # the patch task's per-patch mean / contrast (data.patch_standardize)
        x = standardize_patches(x)
    return to_input(x)


@torch.inference_mode()
def encode(model: EBCLRModel, x: torch.Tensor) -> torch.Tensor:
    """Encoder features ``(N, D)`` of a prepared batch ``(N, C, S, S)``."""
    return model.encoder(x).float()


def probabilities(model: EBCLRModel, features: torch.Tensor) -> torch.Tensor:
    """Linear-probe class probabilities ``(N, K)`` from features ``(N, D)``."""
    return torch.softmax(model.probe.logits(features.float()), dim=1)


def embed(model: EBCLRModel, images: np.ndarray) -> np.ndarray:
    """``(N, D)`` float32 embeddings (the frozen encoder's features)."""
    return encode(model, prepare_batch(model, images)).numpy()


def classify(model: EBCLRModel, images: np.ndarray) -> dict[str, np.ndarray]:
    """``{"labels": (N,) str, "probabilities": (N, K) float32}`` from the linear probe."""
    p = probabilities(model, encode(model, prepare_batch(model, images)))
    return {"labels": np.array([model.classes[i] for i in p.argmax(1).tolist()]), "probabilities": p.numpy()}


def predict(model: EBCLRModel, images: np.ndarray) -> dict[str, np.ndarray]:
    """The contract's predict: ``{"embeddings": (N, D), "probabilities": (N, K)}`` float32."""
    feats = encode(model, prepare_batch(model, images))
    return {"embeddings": feats.numpy(), "probabilities": probabilities(model, feats).numpy()}


def example_input() -> np.ndarray:
    """Four of scikit-learn's 8x8 digits, ``(4, 8, 8)`` float32 in [0, 1] (resized to the model's side)."""
    from sklearn.datasets import load_digits

    return (load_digits().images[:4] / 16.0).astype(np.float32)
