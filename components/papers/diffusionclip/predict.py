"""Serving-side inference: manipulate one image toward a fine-tuned target text.

``manipulate``: the image (float32 ``(H, W, 3)`` or ``(H, W)`` in [0, 1], any size from 8 to 2048 a
side) is centre-cropped to a square and resized to the model's side, inverted with the original
DDPM (deterministic DDIM, ``t0``, ``n_inv`` steps) and generated (``n_gen`` steps, eta = 0) with
eps = strength eps_target + (1 - strength) eps_original (``model_ratio``). The answer is the edited
image at the model's side, ``(S, S, 3)`` in [0, 1]. Deterministic: the same request gives the same
answer. ``should_stop`` (the service's time budget) is polled before every network evaluation; a
True answer raises ``TimeoutError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from components.blocks.diffusion.loss import EpsModel
from components.papers.diffusionclip.model import DiffusionCLIPModel
from components.papers.diffusionclip.sampling import generate, invert, ratio_eps

MAX_STEPS = 100  # n_inv + n_gen network evaluations per request stay <= 200 (plus one at ratio < 1)
StopCheck = Callable[[], bool] | None


def _guard(eps: EpsModel, should_stop: StopCheck) -> EpsModel:
    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if should_stop is not None and should_stop():
            raise TimeoutError("the manipulation stopped")
        return eps(x, t)

    return fn


def targets(model: DiffusionCLIPModel) -> list[dict[str, Any]]:
    """The fine-tuned targets: ``[{"name", "source", "target"}]``."""
    return [{"name": t["name"], "source": t["source"], "target": t["target"]} for t in model.config["targets"]]


def to_model_input(image: np.ndarray, size: int) -> torch.Tensor:
    """``(H, W[, 3])`` in [0, 1] -> centre square, resized to ``(1, 3, size, size)`` in [-1, 1]."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be (H, W) grey or (H, W, 3) RGB, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("image has non-finite values")
    h, w = arr.shape[:2]
    if min(h, w) < 8 or max(h, w) > 2048:
        raise ValueError(f"image is {w}x{h}; sides from 8 to 2048 pixels are accepted")
    s = min(h, w)
    sq = arr[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    t = torch.from_numpy(np.ascontiguousarray(np.clip(sq, 0, 1))).permute(2, 0, 1)[None]
    t = (
        F.interpolate(t, size=(size, size), mode="area")
        if s >= size
        else F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    )
    return t.clamp(0, 1) * 2 - 1


def manipulate(
    model: DiffusionCLIPModel,
    image: np.ndarray,
    target: str | None = None,
    strength: float = 1.0,
    t0: int | None = None,
    steps: int | None = None,
    should_stop: StopCheck = None,
) -> np.ndarray:
    """The edited image ``(S, S, 3)`` float32 in [0, 1].

    Raises:
        ValueError: an unknown target, strength outside [0, 1], t0 outside [1, T - 1], steps outside
            [1, ``MAX_STEPS``] or above t0, a malformed image. TimeoutError: ``should_stop`` said so.
    """
    names = [t["name"] for t in model.config["targets"]]
    target = names[0] if target is None else target
    if target not in names:
        raise ValueError(f"unknown target {target!r}; this model was fine-tuned for: {', '.join(names)}")
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    s = model.config["sampling"]
    t0 = int(s["t0"]) if t0 is None else int(t0)
    t_max = len(model.abar) - 1
    if not 1 <= t0 <= t_max:
        raise ValueError(f"t0 must be in [1, {t_max}], got {t0}")
    n_inv = int(s["n_inv"]) if steps is None else int(steps)
    n_gen = int(s["n_gen"]) if steps is None else int(steps)
    if not (1 <= n_inv <= MAX_STEPS and 1 <= n_gen <= MAX_STEPS):
        raise ValueError(f"steps must be in [1, {MAX_STEPS}]")
    x = to_model_input(image, model.size)
    device = next(model.original.parameters()).device
    with torch.no_grad():
        lat = invert(_guard(model.eps(), should_stop), x.to(device), t0, n_inv, model.abar)
        eps = _guard(ratio_eps(model.eps(), model.eps(target), float(strength)), should_stop)
        out = generate(eps, lat, t0, n_gen, model.abar)
    return ((out[0].float().cpu() + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()


def predict(model: DiffusionCLIPModel, inputs: dict[str, Any], should_stop: StopCheck = None) -> np.ndarray:
    """The contract's ``predict``: ``inputs = {"image", "target"?, "strength"?, "t0"?}`` -> ``manipulate``."""
    extra = set(inputs) - {"image", "target", "strength", "t0"}
    if extra:
        raise ValueError(f"unknown inputs {sorted(extra)}; expected image, target, strength, t0")
    return manipulate(
        model,
        np.asarray(inputs["image"]),
        inputs.get("target"),
        float(inputs.get("strength", 1.0)),
        inputs.get("t0"),
        should_stop=should_stop,
    )


def example_input() -> dict[str, Any]:
    """A drawn frowning face, 32x32 RGB in [0, 1]."""
    from components.blocks.data.drawings import Backgrounds, draw_face

    rng = np.random.default_rng(0)
    face = draw_face({"kind": "face", "colour": "yellow", "mood": "frowning"}, 32, rng, Backgrounds(("coffee",)))
    return {"image": face.astype(np.float32)}
