"""Data preparation: the face domain the DDPM learns and DiffusionCLIP edits.

``drawn`` (default): faces drawn by ``components/blocks/data/drawings.py`` (a round head in one of
seven colours, two eyes, a smiling or frowning mouth, on a low-contrast crop of a photograph that
scikit-image bundles): the style the CLIP block was trained on, with every image's attributes
known, so an edit can also be checked by a classifier trained on the truth. Train and test images
come from disjoint seeds.

``folder``: the paper's real data (CelebA-HQ, FFHQ, AFHQ ...) from a local folder: every image
centre-cropped to a square and area-resized to ``data.size``; the test images are a seeded split
by file. Attributes are unknown there (the independent check is skipped).

Layout of ``data/diffusionclip/``: ``train.npy`` and ``test.npy`` uint8 ``(N, 3, S, S)``,
``manifest.json`` (source, sizes, and for drawn data the attributes of every image).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from components.blocks.data.drawings import Backgrounds, make_set
from components.blocks.data.images import center_crop, folder_images, split_by_image
from components.contract import RunContext
from components.papers.diffusionclip.config import DiffusionCLIPConfig

TEST_SEED_OFFSET = 10_000  # test faces come from a seed disjoint from the training faces'


def _uint8(images: np.ndarray) -> np.ndarray:
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)


def _square(img: np.ndarray, size: int) -> np.ndarray:
    """``(H, W, 3)`` float -> centre square, area-resized to ``(3, size, size)``."""
    sq = center_crop(img, min(img.shape[:2]))
    t = torch.from_numpy(np.ascontiguousarray(sq, dtype=np.float32)).permute(2, 0, 1)[None]
    mode = "area" if sq.shape[0] >= size else "bilinear"
    out = F.interpolate(t, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return out[0].clamp(0, 1).numpy()


def prepare(cfg: DiffusionCLIPConfig, ctx: RunContext) -> None:
    """Write ``data/diffusionclip/{train,test}.npy`` and ``manifest.json``."""
    d = cfg.data
    out = ctx.data_dir
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"source": d.source, "size": d.size}
    if d.source == "drawn":
        bg = Backgrounds()
        train = make_set(d.train_images, d.size, cfg.seed, kinds={"face": 1.0}, bg=bg)
        test = make_set(d.test_images, d.size, cfg.seed + TEST_SEED_OFFSET, kinds={"face": 1.0}, bg=bg)
        arrays = {"train": train.images, "test": test.images}
        manifest["attrs"] = {"train": train.attrs, "test": test.attrs}
    else:
        assert d.path is not None  # DataConfig._path
        images = dict(folder_images(d.path))
        names = sorted(images)
        n_test = min(d.test_images, len(names) - 1)
        train_names, test_names = split_by_image(names, n_test, cfg.seed)
        arrays = {
            "train": np.stack([_square(images[n], d.size) for n in train_names]),
            "test": np.stack([_square(images[n], d.size) for n in test_names]),
        }
        manifest["files"] = {"train": train_names, "test": test_names}
    for split, arr in arrays.items():
        np.save(out / f"{split}.npy", _uint8(arr))
        manifest[f"{split}_images"] = len(arr)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    ctx.log.info("prepared %d train and %d test images (%s)", len(arrays["train"]), len(arrays["test"]), d.source)


def load_split(data_dir: Path, split: str) -> torch.Tensor:
    """``(N, 3, S, S)`` float32 in [-1, 1] (the DDPM's range)."""
    arr = np.load(Path(data_dir) / f"{split}.npy", allow_pickle=False)
    return torch.from_numpy(arr.astype(np.float32) / 127.5 - 1.0)


def load_attrs(data_dir: Path, split: str) -> list[dict[str, str]] | None:
    """The drawn attributes of each image of ``split`` (None for folder data)."""
    manifest = json.loads((Path(data_dir) / "manifest.json").read_text())
    return manifest.get("attrs", {}).get(split)
