"""The served CLIPstyler: ``load`` the exported model, ``predict`` = one bounded optimisation.

``stylize``: the content image (float ``(H, W)`` or ``(H, W, 3)`` in [0, 1], 8 to 2048 pixels a side)
is centre-cropped to a square and resized to the model's side, then a fresh StyleNet is optimised
toward ``text`` for ``iterations`` steps (1 to ``MAX_ITERATIONS``; default the model's) with the full
loss (Eq. 7). With the fast variant and a text it was trained for, that network answers at once
(``iterations`` then fine-tune it further). Deterministic: the same request gives the same answer.
``should_stop`` (the service's time budget) is polled every iteration (``TimeoutError``); ``progress``
is told (done, total) after every iteration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from components.blocks.clip.model import TextImageModel, build_clip, freeze
from components.checkpoint import load_export
from components.papers.clipstyler.config import StyleConfig
from components.papers.clipstyler.data import square
from components.papers.clipstyler.model import ClipContent, StyleNet, VGGContent, freeze_module, vgg_features_module
from components.papers.clipstyler.style import Progress, StopCheck, Styler

MAX_ITERATIONS = 200
MAX_TEXT = 80
TEXT_OK = re.compile(r"^[\w ,.'-]+$")


@dataclass
class CLIPstylerModel:
    """What ``load`` returns."""

    styler: Styler
    size: int
    config: dict[str, Any]
    fast: dict[str, StyleNet] = field(default_factory=dict)

    def to(self, device: torch.device) -> CLIPstylerModel:
        self.styler.clip.to(device)
        self.styler.content_net.to(device)
        for n in self.fast.values():
            n.to(device)
        return self


def _sub(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def load(model_dir: Path) -> CLIPstylerModel:
    """The contract's ``load``: rebuild from ``models/clipstyler/model`` (safetensors, no pickle)."""
    config, state = load_export(Path(model_dir))
    if config.get("paper") != "clipstyler":
        raise ValueError(f"{model_dir} holds a {config.get('paper')!r} model, not clipstyler")
    c = config["clip"]
    clip = TextImageModel(build_clip(c["arch"]), c["arch"], c["mean"], c["std"])
    clip.clip.load_state_dict(_sub(state, "clip."))
    clip = freeze(clip)
    cnet: nn.Module
    if config["content_features"] == "vgg":
        cnet = VGGContent(vgg_features_module())
        cnet.load_state_dict(_sub(state, "vgg."))
        cnet = freeze_module(cnet)
    else:
        cnet = ClipContent(clip)
    styler = Styler(clip, cnet, config["templates"], StyleConfig.model_validate(config["style"]))
    fast = {}
    for i, text in enumerate(config["texts"]):
        sd = _sub(state, f"fast.{i}.")
        if sd:
            net = StyleNet(int(config["style"]["ngf"]))
            net.load_state_dict(sd)
            fast[text] = freeze_module(net)
    return CLIPstylerModel(styler, int(config["size"]), config, fast)


def to_input(image: np.ndarray, size: int) -> torch.Tensor:
    """``(H, W[, 3])`` in [0, 1] -> centre square resized to ``(1, 3, size, size)``."""
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
    return torch.from_numpy(square(np.clip(arr, 0, 1), size))[None]


def check_text(text: str) -> str:
    text = str(text).strip()
    if not text or len(text) > MAX_TEXT or not TEXT_OK.match(text):
        raise ValueError(f"text must be 1 to {MAX_TEXT} letters, digits, spaces or , . ' - (got {text[:100]!r})")
    return text


def stylize(
    model: CLIPstylerModel,
    image: np.ndarray,
    text: str,
    iterations: int | None = None,
    seed: int = 0,
    should_stop: StopCheck = None,
    progress: Progress = None,
) -> np.ndarray:
    """The stylised image ``(S, S, 3)`` float32 in [0, 1].

    Raises:
        ValueError: a malformed image, text or iteration count. TimeoutError: ``should_stop`` said so.
    """
    text = check_text(text)
    default = 0 if text in model.fast else int(model.config["style"]["iterations"])
    steps = default if iterations is None else int(iterations)
    if not 0 <= steps <= MAX_ITERATIONS or (steps == 0 and text not in model.fast):
        raise ValueError(f"iterations must be in [1, {MAX_ITERATIONS}] (0 only for a fast-variant text)")
    device = next(model.styler.clip.parameters()).device
    x = to_input(image, model.size).to(device)
    if text in model.fast:
        with torch.no_grad():
            x = model.fast[text](x)
        if steps == 0:
            return x[0].permute(1, 2, 0).cpu().numpy()
    out, _ = model.styler.stylize(x, text, seed, iterations=steps, should_stop=should_stop, progress=progress)
    return out[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def predict(model: CLIPstylerModel, inputs: Any, should_stop: StopCheck = None) -> np.ndarray:
    """The contract's ``predict``: an image array (the model's first style text, default iterations)
    or ``{"image", "text"?, "iterations"?}`` -> ``stylize``."""
    if not isinstance(inputs, dict):
        inputs = {"image": inputs}
    extra = set(inputs) - {"image", "text", "iterations"}
    if extra:
        raise ValueError(f"unknown inputs {sorted(extra)}; expected image, text, iterations")
    if "image" not in inputs:
        raise ValueError("image is required")
    text = inputs.get("text", model.config["texts"][0])
    return stylize(model, np.asarray(inputs["image"]), text, inputs.get("iterations"), should_stop=should_stop)


def example_input() -> np.ndarray:
    """skimage's ``colorwheel`` at 32x32 RGB in [0, 1] (stylised toward the model's first style text)."""
    from components.blocks.data.images import skimage_images

    img = skimage_images(["colorwheel"])[0][1]
    return np.ascontiguousarray(square(img, 32).transpose(1, 2, 0))
