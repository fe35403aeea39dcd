"""Content images: photographs scikit-image bundles (default) or a local folder (the paper's own
content photos), centre-cropped to squares and area-resized to ``data.size``.

``skimage``: ``data.eval_names`` are stylised and scored; none of them is among the images the CLIP
block's training drawings use (``drawings.BACKGROUNDS``, ``PHOTOS``, ``TEXTURES``), so the scorer
never saw them. ``data.train_names`` are what the fast variant trains its one network on.
``folder``: the first ``eval_images`` files in sorted order after a seeded shuffle are stylised, the
rest train the fast variant.

Layout of ``data/clipstyler/``: ``eval.npy`` and ``train.npy`` uint8 ``(N, 3, S, S)``, ``manifest.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components.blocks.data.images import center_crop, folder_images, skimage_images, split_by_image
from components.contract import RunContext
from components.papers.clipstyler.config import CLIPstylerConfig


def square(img: np.ndarray, size: int) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 1] -> centre square resized to ``(3, size, size)`` float32."""
    sq = center_crop(img, min(img.shape[:2]))
    t = torch.from_numpy(np.ascontiguousarray(sq, dtype=np.float32)).permute(2, 0, 1)[None]
    if sq.shape[0] >= size:
        out = F.interpolate(t, size=(size, size), mode="area")
    else:
        out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return out[0].clamp(0, 1).numpy()


def prepare(cfg: CLIPstylerConfig, ctx: RunContext) -> None:
    """Write ``data/clipstyler/{eval,train}.npy`` and ``manifest.json``."""
    d = cfg.data
    if d.source == "skimage":
        ev, tr = skimage_images(d.eval_names), skimage_images(d.train_names)
    else:
        assert d.path is not None  # DataConfig._check
        images = dict(folder_images(d.path))
        names = sorted(images)
        if len(names) < 2:
            raise ValueError(f"{d.path} holds {len(names)} images; at least 2 are needed (eval and train)")
        tr_names, ev_names = split_by_image(names, min(d.eval_images, len(names) - 1), cfg.seed)
        ev, tr = [(n, images[n]) for n in ev_names], [(n, images[n]) for n in tr_names]
    out = ctx.data_dir
    out.mkdir(parents=True, exist_ok=True)
    for split, items in (("eval", ev), ("train", tr)):
        arr = np.stack([square(img, d.size) for _, img in items])
        np.save(out / f"{split}.npy", np.round(arr * 255).astype(np.uint8))
    manifest = {"source": d.source, "size": d.size, "eval": [n for n, _ in ev], "train": [n for n, _ in tr]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    ctx.log.info("prepared %d content and %d fast-training images (%s)", len(ev), len(tr), d.source)


def load_split(data_dir: Path, split: str) -> torch.Tensor:
    """``(N, 3, S, S)`` float32 in [0, 1]."""
    return torch.from_numpy(np.load(Path(data_dir) / f"{split}.npy", allow_pickle=False).astype(np.float32) / 255.0)


def names(data_dir: Path, split: str) -> list[str]:
    return list(json.loads((Path(data_dir) / "manifest.json").read_text())[split])
