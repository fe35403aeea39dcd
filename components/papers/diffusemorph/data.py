"""Data: image (2-D) or volume (3-D) pairs with label maps, intensities in [-1, 1] (the official
``centered`` min_max (-1, 1)).

Default (``synthetic``, 2-D): grey images that scikit-image bundles (the 100 faces of
``lfw_subset`` for the paper's face-expression setting, plus camera, coins, moon, text ...),
area-resized to ``data.size``. Synthetic 3-D: random ellipsoid phantoms (a "body" and inner
"organs" of random intensity, smooth texture) of ``size x size x depth``. Each pair is one base
warped twice by independent random smooth elastic fields (white noise, Gaussian-smoothed, scaled
to ``elastic_alpha`` pixels per 32), so the true moving -> fixed map is smooth but unknown to the
methods. Labels: intensity classes (quantiles) of the Gaussian-smoothed base, warped with the same
fields (nearest class after a linear warp of the one-hot maps). Test pairs come from bases never
used for training (split by base).

Real data (``folder``): ``path/images/<name>.{npy,nii,nii.gz}`` with ``path/labels/<name>.<ext>``
(the same name); subjects are sorted by name and registered pairwise (i -> i + 1); the last fifth
of the pairs is the test split. 2-D arrays, or 3-D volumes: with ``dims: 2`` the central slice
along the last axis is taken; with ``dims: 3`` the volume (X, Y, Z) is resized (trilinear, labels
nearest) to ``size x size x depth``. Label values are mapped to 0..K-1 over the whole folder
(sorted; 0 stays background when present).

Layout of ``data/diffusemorph/``: ``{train,test}.npz`` with ``moving, fixed`` float32 ``(N, *S)``
and ``moving_label, fixed_label`` int64 ``(N, *S)``, ``S = (size, size)`` or ``(size, size, depth)``.
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
SUFFIXES = (".npy", ".nii", ".nii.gz")


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """``(H, W)`` in [0, 1] -> ``(size, size)``, through the shared ``blocks.data.vision.resize``."""
    return resize(torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None], size)[0, 0].numpy()


def _resize_nd(x: np.ndarray, shape: tuple[int, ...], labels: bool = False) -> np.ndarray:
    """``x`` (2-D or 3-D) -> ``shape``: (bi/tri)linear for images, nearest for label maps."""
    if labels:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
        return F.interpolate(t, size=shape, mode="nearest")[0, 0].long().numpy()
    if len(shape) == 2:
        return _resize(x, shape[0]) if shape[0] == shape[1] else _resize_nd(x[None], (1, *shape))[0]
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
    return F.interpolate(t, size=shape, mode="trilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()


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


def phantom_volume(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A random ellipsoid phantom ``shape`` in [0, 1]: a body, 3-6 inner organs, smooth texture."""
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    vol = np.zeros(shape, np.float32)

    def ellipsoid(centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
        return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True)) <= 1

    vol[ellipsoid(rng.uniform(-0.1, 0.1, 3), rng.uniform(0.7, 0.9, 3))] = rng.uniform(0.3, 0.5)
    for _ in range(int(rng.integers(3, 7))):
        vol[ellipsoid(rng.uniform(-0.4, 0.4, 3), rng.uniform(0.15, 0.4, 3))] = rng.uniform(0.5, 1.0)
    texture = gaussian_filter(rng.standard_normal(shape), 2.0)
    vol = vol * (1 + 0.1 * texture / max(float(texture.std()), 1e-8))
    return np.clip((vol - vol.min()) / max(float(np.ptp(vol)), 1e-6), 0, 1).astype(np.float32)


def random_field(shape: tuple[int, ...], cfg: DataConfig, rng: np.random.Generator) -> np.ndarray:
    """A smooth random displacement ``(nd, *shape)`` in pixels, max |u_i| = alpha * size / 32 * U(0.5, 1)."""
    scale = shape[0] / 32
    u = np.stack([gaussian_filter(rng.standard_normal(shape), cfg.elastic_sigma * scale) for _ in shape])
    return (u / max(float(np.abs(u).max()), 1e-8) * cfg.elastic_alpha * scale * rng.uniform(0.5, 1.0)).astype(
        np.float32
    )


def intensity_labels(img: np.ndarray, classes: int) -> np.ndarray:
    """Classes of the smoothed image by its intensity quantiles: ``img.shape`` int64 in [0, classes)."""
    s = gaussian_filter(img, max(1.0, img.shape[0] / 32))
    edges = np.quantile(s, np.linspace(0, 1, classes + 1)[1:-1])
    return np.digitize(s, edges).astype(np.int64)


def one_hot(label: torch.Tensor, classes: int) -> torch.Tensor:
    """``(*S)`` int64 -> ``(1, classes, *S)`` float."""
    return F.one_hot(label, classes).movedim(-1, 0)[None].float()


def warp_pair(img: np.ndarray, lab: np.ndarray, u: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Warp an image (linear) and its labels (linear one-hot, argmax) by ``u`` ``(nd, *S)``."""
    from components.papers.diffusemorph.model import warp

    flow = torch.from_numpy(u)[None]
    x = warp(torch.from_numpy(img.astype(np.float32))[None, None], flow)[0, 0].numpy()
    return x, warp(one_hot(torch.from_numpy(lab), classes), flow)[0].argmax(0).numpy()


def make_pairs(bases: np.ndarray, n: int, cfg: DataConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` pairs: a base image, warped by two independent random fields (moving and fixed)."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("moving", "fixed", "moving_label", "fixed_label")}
    for i in range(n):
        img = bases[i % len(bases)] if n >= len(bases) else bases[rng.integers(len(bases))]
        lab = intensity_labels(img, cfg.classes)
        for side in ("moving", "fixed"):
            x, y = warp_pair(img, lab, random_field(img.shape, cfg, rng), cfg.classes)
            out[side].append(x * 2 - 1)
            out[f"{side}_label"].append(y)
    return {k: np.stack(v) for k, v in out.items()}


def _read(path: Path, dims: int) -> np.ndarray:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    else:
        import nibabel as nib

        arr = np.asarray(nib.load(str(path)).dataobj)  # type: ignore[attr-defined]  # nibabel's stubs
    arr = np.squeeze(arr)
    if arr.dtype.kind not in "fiub" or arr.ndim not in (2, 3) or (dims == 3 and arr.ndim != 3):
        want = "a 3-D" if dims == 3 else "a 2-D or 3-D"
        raise ValueError(f"{path}: expected {want} numeric array, got {arr.dtype} {arr.shape}")
    return arr[..., arr.shape[-1] // 2] if (arr.ndim == 3 and dims == 2) else arr


def folder_pairs(path: str | Path, cfg: DataConfig) -> dict[str, np.ndarray]:
    """Pairs ``i -> i + 1`` of the subjects in ``path/images`` with ``path/labels`` (see module doc)."""
    root = Path(path)
    files = sorted(p for p in (root / "images").glob("*") if p.name.endswith(SUFFIXES))
    if len(files) < 2:
        raise FileNotFoundError(f"need at least two images (.npy, .nii, .nii.gz) in {root / 'images'}")
    shape = (cfg.size, cfg.size) if cfg.dims == 2 else (cfg.size, cfg.size, cfg.depth)
    imgs, labs = [], []
    for f in files:
        lab_path = root / "labels" / f.name
        if not lab_path.is_file():
            raise FileNotFoundError(f"no label map {lab_path} for {f}")
        x, lab = _read(f, cfg.dims).astype(np.float32), _read(lab_path, cfg.dims)
        if x.shape != lab.shape:
            raise ValueError(f"{f.name}: image {x.shape} and label map {lab.shape} differ in shape")
        if lab.dtype.kind == "f" and not np.array_equal(lab, np.round(lab)):
            raise ValueError(f"{lab_path}: label maps must hold integers")
        if not np.isfinite(x).all():
            raise ValueError(f"{f}: the image holds non-finite values")
        x = (x - x.min()) / max(float(np.ptp(x)), 1e-6)
        imgs.append(_resize_nd(x, shape))
        labs.append(_resize_nd(lab.astype(np.int64), shape, labels=True))
    values = np.unique(np.stack(labs))
    if len(values) > cfg.max_classes:
        raise ValueError(f"the label maps hold {len(values)} distinct values; at most {cfg.max_classes} are accepted")
    labs = [np.searchsorted(values, lab).astype(np.int64) for lab in labs]  # values -> 0..K-1
    return {
        "moving": np.stack(imgs[:-1]) * 2 - 1,
        "fixed": np.stack(imgs[1:]) * 2 - 1,
        "moving_label": np.stack(labs[:-1]),
        "fixed_label": np.stack(labs[1:]),
    }


def synthetic_bases(cfg: DataConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` bases: bundled images in 2-D, random phantoms in 3-D (100 + 20)."""
    if cfg.dims == 2:
        return bundled_images(cfg.size)
    rng = np.random.default_rng([seed, 3])
    vols = np.stack([phantom_volume((cfg.size, cfg.size, cfg.depth), rng) for _ in range(24)])
    return vols[:20], vols[20:]


def prepare(cfg: DiffuseMorphConfig, ctx: RunContext) -> None:
    """Write ``train.npz`` and ``test.npz`` into ``ctx.data_dir``."""
    d = cfg.data
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    if d.source == "folder":
        assert d.path is not None
        pairs = folder_pairs(d.path, d)
        n = len(pairs["moving"])
        cut = max(1, n - max(1, n // 5))
        train = {k: v[:cut] for k, v in pairs.items()}
        test = {k: v[cut:] for k, v in pairs.items()}
    else:
        rng = np.random.default_rng(cfg.seed)
        train_bases, test_bases = synthetic_bases(d, cfg.seed)
        train = make_pairs(train_bases, d.train_pairs, d, rng)
        test = make_pairs(test_bases, d.test_pairs, d, rng)
    for name, split in (("train", train), ("test", test)):
        arrays = {k: v.astype(np.float32 if "label" not in k else np.int64) for k, v in split.items()}
        np.savez(ctx.data_dir / f"{name}.npz", **arrays)  # type: ignore[arg-type]  # stubs: **kwds as allow_pickle


def load_split(data_dir: Path, split: str) -> dict[str, torch.Tensor]:
    """``{moving, fixed: (N, 1, *S) float32; moving_label, fixed_label: (N, *S) int64}``."""
    with np.load(Path(data_dir) / f"{split}.npz", allow_pickle=False) as z:
        out = {k: torch.from_numpy(z[k]) for k in z.files}
    for k in ("moving", "fixed"):
        out[k] = out[k][:, None]
    return out
