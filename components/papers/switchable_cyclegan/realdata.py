"""Real-data readers: 3-D volumes (.npy, NIfTI through nibabel) and 2-D high-quality images.

Every array is returned float32 and min-max scaled to [0, 1] per file (a constant file maps to 0).
A volume's elevational axis is moved to axis 0, the layout the rest of the package uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

VOLUME_SUFFIXES = (".npy", ".nii", ".nii.gz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")
MAX_VOXELS = 512**3


def _unit(arr: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: holds non-finite values")
    lo, hi = float(arr.min()), float(arr.max())
    return ((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)).astype(np.float32)


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix.lower()


def read_volume(path: str | Path, elevational_axis: int = 0) -> np.ndarray:
    """One volume ``(E, A, L)`` in [0, 1] from ``.npy`` or NIfTI (``.nii`` / ``.nii.gz``).

    Raises:
        ValueError: not 3-D (a trailing singleton axis is dropped), too large, or non-finite.
    """
    path = Path(path)
    kind = _suffix(path)
    if kind == ".npy":
        arr = np.load(path, allow_pickle=False)
    elif kind in (".nii", ".nii.gz"):
        import nibabel as nib  # heavy optional import, only for NIfTI
        from nibabel.dataobj_images import DataobjImage

        img = nib.load(str(path))
        if not isinstance(img, DataobjImage):  # nib.load is typed FileBasedImage
            raise ValueError(f"{path.name}: not an image volume ({type(img).__name__})")
        arr = np.asarray(img.get_fdata(dtype=np.float32))
    else:
        raise ValueError(f"{path.name}: not a volume ({', '.join(VOLUME_SUFFIXES)})")
    while arr.ndim > 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"{path.name}: expected a 3-D volume, got shape {arr.shape}")
    if arr.size > MAX_VOXELS:
        raise ValueError(f"{path.name}: {arr.size} voxels exceed {MAX_VOXELS}")
    return np.moveaxis(_unit(arr, path.name), elevational_axis, 0).copy()


def volume_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of volumes")
    files = sorted(p for p in folder.iterdir() if p.is_file() and _suffix(p) in VOLUME_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no volumes ({', '.join(VOLUME_SUFFIXES)})")
    return files


def read_images(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """High-quality 2-D images ``[(name, (H, W))]`` in [0, 1]; colour images are averaged to grey."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of images")
    out = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.suffix.lower() == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            with Image.open(p) as im:
                arr = np.asarray(
                    im.convert("F") if im.mode not in ("RGB", "RGBA", "L") else im.convert("L"), dtype=np.float64
                )
        if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
            arr = arr[..., :3].mean(axis=-1)
        if arr.ndim != 2:
            raise ValueError(f"{p.name}: expected a 2-D image, got shape {arr.shape}")
        out.append((p.name, _unit(arr, p.name)))
    if not out:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return out
