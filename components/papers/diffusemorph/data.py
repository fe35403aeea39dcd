"""Data: image pairs with label maps, in [-1, 1] (the official ``centered`` min_max (-1, 1)).

Default (``synthetic``): grey images that scikit-image bundles (the 100 faces of ``lfw_subset`` for
the paper's face-expression setting, plus camera, coins, moon, text ...), area-resized to
``data.size``; each pair is one base image warped twice by independent random smooth elastic
fields (white noise, Gaussian-smoothed, scaled to ``elastic_alpha`` pixels per 32), so the true
moving -> fixed map is smooth but unknown to the methods. Labels: intensity classes (quantiles) of
the Gaussian-smoothed base image, warped with the same fields (nearest class after a bilinear warp
of the one-hot maps). Test pairs come from base images never used for training (split by image).

Real data (``folder``): ``path/images/<name>.{npy,nii,nii.gz}`` with ``path/labels/<name>.<ext>``;
2-D arrays, or 3-D volumes whose central slice along the last axis is taken; subjects are sorted
by name and registered pairwise (i -> i + 1); the last fifth of the pairs is the test split.

Layout of ``data/diffusemorph/``: ``{train,test}.npz`` with ``moving, fixed`` float32 ``(N, S, S)``
and ``moving_label, fixed_label`` int64 ``(N, S, S)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from components.blocks.data.vision import resize
from components.contract import RunContext
from components.papers.diffusemorph.config import DataConfig, DiffuseMorphConfig

EXTRA = ("camera", "coins", "moon", "text", "brick", "grass", "gravel", "horse", "page", "clock")
MAX_FILE_BYTES = 512 * 1024 * 1024


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """``(H, W)`` in [0, 1] -> ``(size, size)``, through the shared ``blocks.data.vision.resize``."""
    return resize(torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None], size)[0, 0].numpy()


def bundled_images(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` base images ``(N, size, size)`` in [0, 1]: faces split 80/20, others train."""
    from skimage import data

    faces = data.lfw_subset()[:100]  # the first 100 of lfw_subset are faces
    others = []
    for name in EXTRA:
        img = np.asarray(getattr(data, name)(), dtype=np.float32)
        img = img.mean(axis=2) if img.ndim == 3 else img
        img = (img - img.min()) / max(float(np.ptp(img)), 1e-6)
        h, w = img.shape
        s = min(h, w)
        others.append(_resize(img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s], size))
    faces = np.stack([_resize(f, size) for f in faces])
    return np.concatenate([faces[:80], np.stack(others)]), faces[80:]


def random_field(size: int, cfg: DataConfig, rng: np.random.Generator) -> np.ndarray:
    """A smooth random displacement ``(2, size, size)`` in pixels, max |u| = alpha * size / 32."""
    u = np.stack([gaussian_filter(rng.standard_normal((size, size)), cfg.elastic_sigma * size / 32) for _ in "xy"])
    return (u / max(float(np.abs(u).max()), 1e-8) * cfg.elastic_alpha * size / 32 * rng.uniform(0.5, 1.0)).astype(
        np.float32
    )


def intensity_labels(img: np.ndarray, classes: int) -> np.ndarray:
    """Classes of the smoothed image by its intensity quantiles: ``(H, W)`` int64 in [0, classes)."""
    s = gaussian_filter(img, max(1.0, img.shape[0] / 32))
    edges = np.quantile(s, np.linspace(0, 1, classes + 1)[1:-1])
    return np.digitize(s, edges).astype(np.int64)


def _warp_np(img: np.ndarray, lab: np.ndarray, u: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    from components.papers.diffusemorph.model import warp

    flow = torch.from_numpy(u)[None]
    x = warp(torch.from_numpy(img.astype(np.float32))[None, None], flow)[0, 0].numpy()
    onehot = F.one_hot(torch.from_numpy(lab), classes).permute(2, 0, 1)[None].float()
    return x, warp(onehot, flow)[0].argmax(0).numpy()


def make_pairs(bases: np.ndarray, n: int, cfg: DataConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` pairs: a random base image, warped by two independent random fields."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("moving", "fixed", "moving_label", "fixed_label")}
    for i in range(n):
        img = bases[i % len(bases)] if n >= len(bases) else bases[rng.integers(len(bases))]
        lab = intensity_labels(img, cfg.classes)
        for side in ("moving", "fixed"):
            x, y = _warp_np(img, lab, random_field(img.shape[0], cfg, rng), cfg.classes)
            out[side].append(x * 2 - 1)
            out[f"{side}_label"].append(y)
    return {k: np.stack(v) for k, v in out.items()}


def _read(path: Path) -> np.ndarray:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    else:
        import nibabel as nib

        arr = np.asarray(nib.load(str(path)).dataobj)  # type: ignore[attr-defined]  # nibabel's stubs
    if arr.dtype.kind not in "fiub" or arr.ndim not in (2, 3):
        raise ValueError(f"{path}: expected a 2-D or 3-D numeric array, got {arr.dtype} {arr.shape}")
    return arr[..., arr.shape[-1] // 2] if arr.ndim == 3 else arr


def folder_pairs(path: str | Path, size: int) -> dict[str, np.ndarray]:
    """Pairs ``i -> i + 1`` of the subjects in ``path/images`` with ``path/labels`` (see module doc)."""
    root = Path(path)
    files = sorted(p for p in (root / "images").glob("*") if p.name.endswith((".npy", ".nii", ".nii.gz")))
    if len(files) < 2:
        raise FileNotFoundError(f"need at least two images in {root / 'images'}")
    imgs, labs = [], []
    for f in files:
        lab_path = root / "labels" / f.name
        if not lab_path.is_file():
            raise FileNotFoundError(f"no label map {lab_path} for {f}")
        x = _read(f).astype(np.float32)
        x = (x - x.min()) / max(float(np.ptp(x)), 1e-6)
        lab = torch.from_numpy(_read(lab_path).astype(np.int64))[None, None].float()
        imgs.append(_resize(x, size))
        labs.append(F.interpolate(lab, size=(size, size), mode="nearest")[0, 0].long().numpy())
    return {
        "moving": np.stack(imgs[:-1]) * 2 - 1,
        "fixed": np.stack(imgs[1:]) * 2 - 1,
        "moving_label": np.stack(labs[:-1]),
        "fixed_label": np.stack(labs[1:]),
    }


def prepare(cfg: DiffuseMorphConfig, ctx: RunContext) -> None:
    """Write ``train.npz`` and ``test.npz`` into ``ctx.data_dir``."""
    d = cfg.data
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    if d.source == "folder":
        assert d.path is not None
        pairs = folder_pairs(d.path, d.size)
        n = len(pairs["moving"])
        cut = max(1, n - max(1, n // 5))
        train = {k: v[:cut] for k, v in pairs.items()}
        test = {k: v[cut:] for k, v in pairs.items()}
    else:
        rng = np.random.default_rng(cfg.seed)
        train_bases, test_bases = bundled_images(d.size)
        train = make_pairs(train_bases, d.train_pairs, d, rng)
        test = make_pairs(test_bases, d.test_pairs, d, rng)
    for name, split in (("train", train), ("test", test)):
        arrays = {k: v.astype(np.float32 if "label" not in k else np.int64) for k, v in split.items()}
        np.savez(ctx.data_dir / f"{name}.npz", **arrays)  # type: ignore[arg-type]  # stubs: **kwds as allow_pickle


def load_split(data_dir: Path, split: str) -> dict[str, torch.Tensor]:
    """``{moving, fixed: (N, 1, S, S) float32; moving_label, fixed_label: (N, S, S) int64}``."""
    with np.load(Path(data_dir) / f"{split}.npz", allow_pickle=False) as z:
        out = {k: torch.from_numpy(z[k]) for k in z.files}
    for k in ("moving", "fixed"):
        out[k] = out[k][:, None]
    return out
