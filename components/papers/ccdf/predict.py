"""Serving-side inference: super-resolution, inpainting and CS-MRI with CCDF.

Images are float32 numpy arrays in [0, 1], ``(H, W)`` (grey) or ``(H, W, 3)``; the score model is
grey, so colour channels are reconstructed as a batch of three grey images. ``steps`` is N and
``t0`` the starting time (N' = t0 N network evaluations), defaults from the exported config (the
paper's N = 100, t0 = 0.2). ``init``: ``network`` (the trained feed-forward initialiser, only at
its trained SR scale), ``simple`` (bicubic / masked / zero-filled) or ``tv`` (TV-regularised
reconstruction, ``task.tv_lambda``; the paper's "x0_hat from any solver"). Every call is seeded, so the
same request gives the same answer.

MRI: single-coil k-space in the centred orthonormal layout of ``components.blocks.physics.
operators.fft2c`` (DC at ``(H // 2, W // 2)``), of a real-valued (magnitude-like) image, as the
score model is real; H and W multiples of the model's ``multiple``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from components.blocks.physics.operators import (
    Downsample,
    FourierSampling,
    Masking,
    fft2c,
)
from components.papers.ccdf.config import TaskConfig
from components.papers.ccdf.model import CCDFModel
from components.papers.ccdf.solver import ccdf, n_prime
from components.papers.ccdf.tasks import kspace_mask, simple_init, tv_init

MAX_SIDE = 256  # output side bound (CPU cost grows with pixels x NFE)
MAX_NFE = 200
# Work bound: output pixels x channels x network evaluations. One NFE of the default-scale U-Net
# ([16, 32, 32]) on a 256x256 grey image took 2.5 s on one thread of the busy 2-core dev box
# (3.7e-5 s per pixel-NFE; benchmarks/serving_bounds.py), so 2**21 pixel-NFEs (256x256 grey at 32
# NFE, 128x128 at 128, 64x64 RGB at 170) is ~80 s there: inside the service's 96 s budget.
MAX_WORK = 2**21
INITS = ("simple", "tv", "network")
# A caller's time budget (the HTTP service's), polled before every network evaluation: the solver
# raises TimeoutError once it returns True (solver.ccdf).
StopCheck = Callable[[], bool] | None


def _settings(model: CCDFModel, steps: int | None, t0: float | None, init: str) -> tuple[int, float]:
    s = model.config["sampling"]
    steps = int(s["steps"]) if steps is None else steps
    t0 = float(s["t0"]) if t0 is None else t0
    if not 1 <= steps <= 1000:
        raise ValueError(f"steps must be in [1, 1000], got {steps}")
    if not (math.isfinite(t0) and 0 < t0 <= 1):
        raise ValueError(f"t0 must be in (0, 1], got {t0}")
    if n_prime(t0, steps) > MAX_NFE:
        raise ValueError(f"t0 * steps = {n_prime(t0, steps)} network evaluations; at most {MAX_NFE} are allowed")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    return steps, t0


def check_work(pixels: int, channels: int, steps: int, t0: float) -> None:
    """Refuse (ValueError) a request over ``MAX_WORK`` pixel-network-evaluations."""
    work = pixels * channels * n_prime(t0, steps)
    if work > MAX_WORK:
        raise ValueError(
            f"this request needs {pixels} pixels x {channels} channel(s) x {n_prime(t0, steps)} network "
            f"evaluations = {work}; at most {MAX_WORK} are allowed (fewer steps, a smaller t0 or a smaller image)"
        )


def _channels(image: np.ndarray, name: str = "image") -> torch.Tensor:
    """``(H, W)`` / ``(H, W, C)`` in [0, 1] -> ``(C, 1, H, W)`` in [-1, 1]."""
    arr = np.asarray(image)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3) or min(arr.shape[:2]) < 1:
        raise ValueError(f"{name} must be (H, W), (H, W, 1) or (H, W, 3), got shape {np.shape(image)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds non-finite values")
    return torch.from_numpy(np.clip(arr, 0, 1)).permute(2, 0, 1)[:, None] * 2 - 1


def _unchannels(x: torch.Tensor, like: np.ndarray) -> np.ndarray:
    arr = ((x[:, 0].permute(1, 2, 0).float() + 1) / 2).clamp(0, 1).numpy().astype(np.float32)
    return arr[..., 0] if np.asarray(like).ndim == 2 else arr


def _pad_to(n: int, scale: int, multiple: int) -> int:
    while (n * scale) % multiple:
        n += 1
    return n


def _run(
    model: CCDFModel,
    task: str,
    op,
    y: torch.Tensor,
    simple: torch.Tensor,
    steps: int,
    t0: float,
    init: str,
    should_stop: StopCheck = None,
) -> tuple[torch.Tensor, int]:
    if init == "network":
        x0_hat = model.initialise(task, simple)
    elif init == "tv":
        tcfg = TaskConfig(**model.config["task"])  # exports without tv_* keys get the defaults
        x0_hat = tv_init(op, y, tcfg.tv_lambda, tcfg.tv_iters)
    else:
        x0_hat = simple
    return ccdf(
        model.eps,
        x0_hat,
        op,
        y,
        model.abar,
        steps=steps,
        t0=t0,
        generator=torch.Generator().manual_seed(0),
        should_stop=should_stop,
    )


def super_resolve(
    model: CCDFModel,
    image: np.ndarray,
    scale: int | None = None,
    steps: int | None = None,
    t0: float | None = None,
    init: str = "network",
    should_stop: StopCheck = None,
) -> dict[str, Any]:
    """x``scale`` SR of a low-resolution image (average-pooling degradation). Returns
    ``{"image": (s H, s W[, 3]), "nfe": int}``."""
    trained = int(model.config["task"]["sr_factor"])
    scale = trained if scale is None else int(scale)
    steps, t0 = _settings(model, steps, t0, init)
    if not 2 <= scale <= 8:
        raise ValueError(f"scale must be in [2, 8], got {scale}")
    if init == "network" and scale != trained:
        raise ValueError(f"the network initialiser was trained for x{trained}; use init=simple for x{scale}")
    y = _channels(image)
    h, w = y.shape[-2:]
    if max(h, w) * scale > MAX_SIDE:
        raise ValueError(f"the output would be {h * scale}x{w * scale}; at most {MAX_SIDE} pixels per side")
    ph, pw = _pad_to(h, scale, model.multiple), _pad_to(w, scale, model.multiple)
    check_work(ph * pw * scale * scale, y.shape[0], steps, t0)
    y = F.pad(y, (0, pw - w, 0, ph - h), mode="replicate")
    op = Downsample(scale)
    out, nfe = _run(model, "sr", op, y, simple_init("sr", op, y), steps, t0, init, should_stop)
    return {"image": _unchannels(out[..., : h * scale, : w * scale], image), "nfe": nfe}


def inpaint(
    model: CCDFModel,
    image: np.ndarray,
    mask: np.ndarray,
    steps: int | None = None,
    t0: float | None = None,
    init: str = "network",
    should_stop: StopCheck = None,
) -> dict[str, Any]:
    """Fill the pixels where ``mask`` is 0 (``mask``: ``(H, W)``, 1 = known). Returns ``{"image", "nfe"}``."""
    steps, t0 = _settings(model, steps, t0, init)
    x = _channels(image)
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m.mean(axis=2)
    if m.shape != x.shape[-2:]:
        raise ValueError(
            f"mask is {m.shape[1] if m.ndim > 1 else '?'}x{m.shape[0]} but the image is {x.shape[-1]}x{x.shape[-2]}"
        )
    if not np.isfinite(m.astype(np.float32)).all():
        raise ValueError("mask holds non-finite values")
    h, w = x.shape[-2:]
    if max(h, w) > MAX_SIDE:
        raise ValueError(f"image is {w}x{h}; at most {MAX_SIDE} pixels per side")
    mk = torch.from_numpy((m.astype(np.float32) > 0.5).astype(np.float32))[None, None]
    ph, pw = _pad_to(h, 1, model.multiple), _pad_to(w, 1, model.multiple)
    check_work(ph * pw, x.shape[0], steps, t0)
    x, mk = F.pad(x, (0, pw - w, 0, ph - h), mode="replicate"), F.pad(mk, (0, pw - w, 0, ph - h), mode="replicate")
    op = Masking(mk)
    y = op.A(x)
    out, nfe = _run(model, "inpaint", op, y, simple_init("inpaint", op, y), steps, t0, init, should_stop)
    return {"image": _unchannels(out[..., :h, :w], image), "nfe": nfe}


def simulate_kspace(
    model: CCDFModel, image: np.ndarray, acceleration: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Single-coil k-space of a grey image and a random mask of the model's kind.

    Returns:
        ``(complex64 (H, W), float32 (H, W))``: the k-space and the mask.
    """
    if not (math.isfinite(acceleration) and 1 <= acceleration <= 16):
        raise ValueError(f"acceleration must be in [1, 16], got {acceleration}")
    x = _channels(image).mean(0, keepdim=True)
    h, w = x.shape[-2:]
    tcfg = TaskConfig(**{**model.config["task"], "acceleration": acceleration})
    mask = kspace_mask(h, w, tcfg, torch.Generator().manual_seed(seed))
    k = fft2c(((x + 1) / 2).to(torch.complex64))[0, 0]
    return (mask * k).numpy(), mask.numpy()


def mri_reconstruct(
    model: CCDFModel,
    kspace: np.ndarray,
    mask: np.ndarray,
    steps: int | None = None,
    t0: float | None = None,
    init: str = "network",
    should_stop: StopCheck = None,
) -> dict[str, Any]:
    """CS-MRI from undersampled k-space. ``kspace``: complex ``(H, W)`` or real ``(H, W, 2)`` (re, im);
    ``mask``: ``(H, W)`` or ``(W,)`` (phase-encode lines) of 0/1.

    Returns:
        ``{"image": (H, W) in [0, 1] (PNG), "array": float32 (H, W) in the k-space's own scale, "nfe"}``.
    """
    steps, t0 = _settings(model, steps, t0, init)
    k = np.asarray(kspace)
    if k.ndim == 3 and k.shape[2] == 2 and k.dtype.kind in "fiu":
        k = k[..., 0] + 1j * k[..., 1]
    if k.ndim != 2 or k.dtype.kind not in "fciu":
        raise ValueError(f"kspace must be complex (H, W) or real (H, W, 2), got {k.dtype} {np.shape(kspace)}")
    h, w = k.shape
    m = np.asarray(mask)
    if m.dtype.kind not in "fiub":
        raise ValueError(f"mask must be numeric, got {m.dtype}")
    if m.ndim == 1:
        m = np.broadcast_to(m, (h, m.shape[0]))
    if m.shape != (h, w):
        raise ValueError(f"mask shape {np.shape(mask)} does not match the k-space shape {(h, w)}")
    if max(h, w) > MAX_SIDE or min(h, w) < model.multiple or h % model.multiple or w % model.multiple:
        raise ValueError(
            f"k-space sides must be multiples of {model.multiple} in [{model.multiple}, {MAX_SIDE}], got {h}x{w}"
        )
    if not (np.isfinite(k).all() and np.isfinite(m.astype(np.float32)).all()):
        raise ValueError("kspace or mask holds non-finite values")
    if not np.isin(m, (0, 1)).all() or not m.any():
        raise ValueError("mask must hold only 0 and 1, with at least one sampled point")
    check_work(h * w, 1, steps, t0)
    mk = torch.from_numpy(m.astype(np.float32))
    op = FourierSampling(mk)
    y_raw = mk * torch.from_numpy(k.astype(np.complex64))
    scale = float(op.A_adjoint(y_raw).abs().max())
    if scale <= 0:
        raise ValueError("the sampled k-space is all zeros")
    # the model's space: x' = 2 x / scale - 1, so y' = 2 y / scale - A(1) (A is linear)
    y = (2 / scale) * y_raw - op.A(torch.ones(1, 1, h, w))[0, 0]
    y = y[None, None]
    out, nfe = _run(model, "mri", op, y, simple_init("mri", op, y), steps, t0, init, should_stop)
    x01 = ((out[0, 0] + 1) / 2).clamp(0, 1)
    return {"image": x01.numpy().astype(np.float32), "array": (x01 * scale).numpy().astype(np.float32), "nfe": nfe}


def predict(model: CCDFModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The pyfunc entry: ``{"kspace", "mask"}`` -> MRI, ``{"image", "mask"}`` -> inpainting,
    ``{"image"}`` -> x(trained scale) SR. Returns ``{"image": float32 array}``."""
    if "kspace" in inputs:
        return {"image": mri_reconstruct(model, inputs["kspace"], inputs["mask"])["image"]}
    if "mask" in inputs:
        return {"image": inpaint(model, inputs["image"], inputs["mask"])["image"]}
    return {"image": super_resolve(model, inputs["image"])["image"]}


def example_input() -> dict[str, np.ndarray]:
    """An 8x8 grey crop of skimage's camera, average-pooled x4 from 32x32 (an SR request)."""
    from skimage import data

    crop = data.camera()[200:232, 200:232].astype(np.float32) / 255
    return {"image": crop.reshape(8, 4, 8, 4).mean(axis=(1, 3)).astype(np.float32)}
