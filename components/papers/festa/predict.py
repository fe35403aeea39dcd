"""Serving-side inference with the exported FeSTA model: classify, segment, score severity.

An image is a float array in [0, 1], ``(H, W)`` or ``(H, W, C)`` with C = 1, 3 or 4 (colour is
averaged to grey, alpha dropped), at most ``MAX_SIDE`` pixels a side. It is resized (bilinear) to
the model's input size, goes through the task's FedAvg-ed head, the shared body and the task's tail;
a segmentation mask is resized back (nearest) to the input's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from components.papers.festa.model import FeSTAModel
from components.papers.festa.model import load as load_model

CLASSES = ("normal", "pneumonia-like", "COVID-like")
TASKS = ("cls", "seg", "sev")
MAX_SIDE = 2048
MIN_SIDE = 8


def load(model_dir: Path) -> FeSTAModel:
    """The exported model (model.safetensors + config.json; no pickle)."""
    return load_model(Path(model_dir))


def _to_input(model: FeSTAModel, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    arr = np.asarray(image)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"image must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[..., : 3 if arr.shape[2] == 4 else arr.shape[2]].mean(axis=2)
    if arr.ndim != 2:
        raise ValueError(f"image must be (H, W) or (H, W, C) with C in 1, 3, 4; got shape {np.shape(image)}")
    h, w = arr.shape
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        raise ValueError(f"image sides must be in [{MIN_SIDE}, {MAX_SIDE}], got {h}x{w}")
    x = torch.from_numpy(arr.astype(np.float32))
    if not torch.isfinite(x).all():
        raise ValueError("image holds non-finite values")
    size = int(model.config["size"])
    x = F.interpolate(x[None, None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1), (h, w)


def _task(model: FeSTAModel, task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if task not in model.tasks:
        raise ValueError(f"this model has no {task} head and tail (it has {', '.join(model.tasks)})")


@torch.inference_mode()
def classify(model: FeSTAModel, image: np.ndarray) -> dict[str, Any]:
    """``{"probabilities": {class: p}, "label": class}``."""
    _task(model, "cls")
    x, _ = _to_input(model, image)
    p = model(x, "cls").softmax(1)[0].tolist()
    return {"probabilities": dict(zip(CLASSES, p, strict=True)), "label": CLASSES[int(np.argmax(p))]}


@torch.inference_mode()
def segment(model: FeSTAModel, image: np.ndarray) -> dict[str, Any]:
    """``{"mask": bool (H, W) at the input's size, "lesion_fraction": share of lesion pixels}``."""
    _task(model, "seg")
    x, (h, w) = _to_input(model, image)
    logits = model(x, "seg")
    mask = F.interpolate((logits > 0).float(), size=(h, w), mode="nearest")[0, 0].numpy() > 0.5
    return {"mask": mask, "lesion_fraction": float(mask.mean())}


@torch.inference_mode()
def severity(model: FeSTAModel, image: np.ndarray) -> dict[str, Any]:
    """``{"severity": lesion fraction of the lung area, clipped to [0, 1]}``."""
    _task(model, "sev")
    x, _ = _to_input(model, image)
    return {"severity": float(model(x, "sev")[0].clamp(0, 1))}


def predict(model: FeSTAModel, image: np.ndarray, task: str = "cls") -> dict[str, Any]:
    """One task's answer for one image (``task``: cls | seg | sev)."""
    _task(model, task)
    return {"cls": classify, "seg": segment, "sev": severity}[task](model, image)


def example_input() -> np.ndarray:
    """A 64x64 synthetic CXR-like image with COVID-like lesions (seeded), float32 in [0, 1]."""
    from components.papers.festa.data import synth

    return synth(1, 64, np.random.default_rng(0), np.array([2]))["image"][0]
