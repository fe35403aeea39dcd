"""Synthetic chest-X-ray-like images with lesion blobs: three tasks, non-IID hospitals; a folder loader.

An image: a bright thorax with two dark lung fields; class 0 (normal) has no lesion, class 1
(pneumonia-like) one or two dense focal blobs in one lung, class 2 (COVID-like) several faint
peripheral blobs in both lungs. Mask = lesion pixels, severity = lesion fraction of the lung area
(in [0, 1]). Hospitals differ by Dirichlet label skew (alpha) and an intensity transform (gamma,
contrast, offset) of their own. Task t's clients hold images labelled for task t only.

Folder layout (real data): ``<path>/<task>_<k>/`` per client and ``<path>/test_<task>/``, each with
images and ``labels.csv`` (``file,label,severity``); masks in ``masks/<file>`` (PNG, >127 = lesion).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from components.contract import RunContext
from components.papers.festa.config import FeSTAConfig


def synth(n: int, size: int, rng: np.random.Generator, labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``n`` images ``(n, size, size)`` in [0, 1] with ``label`` (n,), ``severity`` (n,), ``mask`` (n, size, size)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    lab = rng.integers(0, 3, n) if labels is None else labels
    imgs = np.zeros((n, size, size), np.float32)
    masks = np.zeros((n, size, size), np.float32)
    sev = np.zeros(n, np.float32)
    for i in range(n):
        cx = [0.3 + rng.normal(0, 0.02), 0.7 + rng.normal(0, 0.02)]
        lungs = np.zeros((size, size), bool)
        for c in cx:
            lungs |= ((xx - c) / 0.16) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1
        img = 0.75 - 0.1 * np.abs(xx - 0.5) + 0.04 * np.sin(yy * 40 + rng.uniform(0, 6))  # thorax, ribs
        img = np.where(lungs, 0.25 + 0.03 * np.sin(yy * 40), img)
        lesion = np.zeros((size, size), np.float32)
        if lab[i] == 1:  # dense focal consolidation, one lung
            c = cx[rng.integers(0, 2)]
            for _ in range(rng.integers(1, 3)):
                bx, by, r = c + rng.normal(0, 0.05), rng.uniform(0.35, 0.65), rng.uniform(0.06, 0.1)
                lesion = np.maximum(lesion, np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * r**2)) * 0.55)
        elif lab[i] == 2:  # several faint peripheral blobs, both lungs
            for c in cx:
                for _ in range(rng.integers(2, 4)):
                    side = -1 if c < 0.5 else 1
                    bx, by = c + side * rng.uniform(0.03, 0.1), rng.uniform(0.3, 0.7)
                    r = rng.uniform(0.04, 0.07)
                    lesion = np.maximum(lesion, np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * r**2)) * 0.3)
        lesion *= lungs
        imgs[i] = img + lesion
        masks[i] = lesion > 0.12
        sev[i] = masks[i].sum() / max(lungs.sum(), 1)
    imgs += rng.normal(0, 0.03, imgs.shape).astype(np.float32)
    return {"image": np.clip(imgs, 0, 1), "label": lab.astype(np.int64), "severity": sev, "mask": masks}


def hospital_shift(x: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """One hospital's acquisition: gamma, contrast and offset drawn once per client."""
    gamma = np.exp(rng.normal(0, strength))
    contrast = 1 + rng.normal(0, strength)
    offset = rng.normal(0, strength / 3)
    return np.clip((np.clip(x, 0, 1) ** gamma - 0.5) * contrast + 0.5 + offset, 0, 1).astype(np.float32)


def _write(path: Path, d: dict[str, np.ndarray]) -> None:
    np.savez(path, **d)  # type: ignore[arg-type]  # numpy stubs type **kwds as allow_pickle


def load_split(data_dir: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(data_dir / f"{name}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _read_folder(folder: Path, size: int) -> dict[str, np.ndarray]:
    from PIL import Image

    rows = list(csv.DictReader((folder / "labels.csv").open()))
    if not rows:
        raise ValueError(f"{folder}/labels.csv has no rows")
    imgs, masks, labs, sevs = [], [], [], []
    for r in rows:
        img = Image.open(folder / r["file"]).convert("L").resize((size, size), Image.Resampling.BILINEAR)
        imgs.append(np.asarray(img, np.float32) / 255.0)
        mpath = folder / "masks" / r["file"]
        if mpath.is_file():
            m = Image.open(mpath).convert("L").resize((size, size), Image.Resampling.NEAREST)
            masks.append((np.asarray(m) > 127).astype(np.float32))
        else:
            masks.append(np.zeros((size, size), np.float32))
        labs.append(int(r.get("label") or 0))
        sevs.append(float(r.get("severity") or 0.0))
    lab = np.array(labs, np.int64)
    if lab.min() < 0 or lab.max() > 2:
        raise ValueError(f"{folder}: labels must be 0 (normal), 1 (pneumonia) or 2 (COVID)")
    return {"image": np.stack(imgs), "label": lab, "severity": np.array(sevs, np.float32), "mask": np.stack(masks)}


def prepare(cfg: FeSTAConfig, ctx: RunContext) -> None:
    """Write ``client_<task>_<k>.npz`` for every client and ``test_<task>.npz`` for every task."""
    d = cfg.data
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    for task in cfg.train.tasks:
        for k in range(d.clients_per_task):
            if d.source == "folder":
                assert d.path is not None
                split = _read_folder(Path(d.path) / f"{task}_{k}", d.size)
            else:
                p = rng.dirichlet([d.dirichlet_alpha] * 3)  # label skew of this hospital
                split = synth(d.train_per_client, d.size, rng, rng.choice(3, d.train_per_client, p=p))
                split["image"] = hospital_shift(split["image"], rng, d.intensity_shift)
            _write(ctx.data_dir / f"client_{task}_{k}.npz", split)
        if d.source == "folder":
            assert d.path is not None
            test = _read_folder(Path(d.path) / f"test_{task}", d.size)
        else:  # held-out hospitals: balanced labels, intensity shifts of their own
            test = synth(d.test_per_task, d.size, rng)
            test["image"] = np.concatenate(
                [hospital_shift(c, rng, d.intensity_shift) for c in np.array_split(test["image"], 4)]
            )
        _write(ctx.data_dir / f"test_{task}.npz", test)


def client_list(tasks: Sequence[str], per_task: int) -> list[tuple[str, int]]:
    """``[(task, k)]`` in client-index order: every task's clients ``0..per_task-1`` in turn."""
    return [(t, k) for t in tasks for k in range(per_task)]


def as_tensors(split: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """``image (N, 1, S, S)``, ``label (N,)``, ``severity (N,)``, ``mask (N, 1, S, S)`` as torch tensors."""
    return {
        "image": torch.from_numpy(np.ascontiguousarray(split["image"], np.float32))[:, None],
        "label": torch.from_numpy(np.asarray(split["label"], np.int64)),
        "severity": torch.from_numpy(np.asarray(split["severity"], np.float32)),
        "mask": torch.from_numpy(np.ascontiguousarray(split["mask"], np.float32))[:, None],
    }


def sample_batch(data: dict[str, torch.Tensor], batch_size: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """``batch_size`` examples drawn uniformly with replacement by ``gen`` (one draw per round)."""
    idx = torch.randint(len(data["label"]), (batch_size,), generator=gen)
    return {k: v[idx] for k, v in data.items()}
