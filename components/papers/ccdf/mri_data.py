"""Real MR slices from NIfTI volumes (nibabel): the CS-MRI data of the default scale.

No download: the default volume is the one real brain scan that nibabel's wheel bundles at a
usable size, ``nibabel/tests/data/example4d.nii.gz`` (``nibabel.testing.data_path``): a 4-D
EPI (fMRI) series, 128 x 96 in-plane at 2 mm, 24 axial slices 2.2 mm apart, 2 time points.
What else the installed packages bundle, checked one by one (2026-12-02):

* ``anatomical.nii`` / ``example4d+orig`` (AFNI): real T1 anatomy but cropped to 33 x 41 x 25;
* ``0.dcm`` / ``1.dcm`` (nicom): MR DICOM headers over a synthetic stripe pattern, not anatomy;
* ``philips_mprage.dcm.gz``, ``siemens_dwi_*.dcm.gz``, ``decimal_rescale.dcm``: all-zero pixels;
* ``slicethickness_empty_string.dcm``: a 384 x 384 MIP strip, mostly background;
* the Philips PAR/REC files: a spherical phantom.

So the real-MR set is one subject's 24 EPI slices; splits are by slice range (``split_slices``),
with gaps, so that no test slice neighbours a training slice. A user's fastMRI-style data goes
through ``data.mri_path`` (a NIfTI file, or ``.npy`` slices in ``data.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

BUNDLED_VOLUME = "example4d.nii.gz"
MAX_NIFTI_BYTES = 512 * 1024 * 1024


def bundled_volume_path() -> Path:
    """nibabel's bundled real EPI brain volume (raises if nibabel is not installed)."""
    from nibabel.testing import data_path

    return Path(str(data_path)) / BUNDLED_VOLUME  # data_path: a Traversable, a real folder in nibabel


def load_nifti_slices(path: str | Path, size: int, *, time_points: int = 1, percentile: float = 99.5) -> np.ndarray:
    """Axial magnitude slices of a NIfTI volume as float32 ``(T, Z, size, size)`` in [0, 1].

    Each slice is zero-padded to a square (centred), area-resized to ``size``, and the volume is
    divided by its ``percentile``-th intensity (one scale per volume, so contrast between slices is
    kept) and clipped to [0, 1]. 4-D series keep their first ``time_points`` volumes.

    Raises:
        FileNotFoundError / ValueError: no such file, too large, or not a 3-D / 4-D image.
    """
    import nibabel as nib
    from nibabel.dataobj_images import DataobjImage

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no NIfTI volume at {p}")
    if p.stat().st_size > MAX_NIFTI_BYTES:
        raise ValueError(f"{p} is larger than {MAX_NIFTI_BYTES} bytes")
    img = nib.load(str(p))
    if not isinstance(img, DataobjImage):  # nib.load is typed FileBasedImage
        raise ValueError(f"{p}: not an image volume ({type(img).__name__})")
    vol = np.abs(np.asarray(img.dataobj, dtype=np.float32))
    if vol.ndim == 3:
        vol = vol[..., None]
    if vol.ndim != 4 or min(vol.shape[:3]) < 1:
        raise ValueError(f"{p}: expected a 3-D or 4-D volume, got shape {vol.shape}")
    vol = vol[..., : max(1, time_points)]
    h, w, z, t = vol.shape
    s = max(h, w)
    sq = np.zeros((t, z, s, s), np.float32)  # (T, Z, S, S): slice planes, padded square
    sq[:, :, (s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = vol.transpose(3, 2, 0, 1)
    out = F.interpolate(torch.from_numpy(sq).reshape(t * z, 1, s, s), size=(size, size), mode="area")
    slices = out.reshape(t, z, size, size).numpy()
    scale = float(np.percentile(slices, percentile)) if slices.max() > 0 else 1.0
    return np.clip(slices / max(scale, 1e-12), 0.0, 1.0).astype(np.float32)


def split_slices(
    n_slices: int, train: tuple[int, int], val: tuple[int, int], test: tuple[int, int]
) -> dict[str, list[int]]:
    """Slice indices of the three ranges (inclusive ``(first, last)``), checked disjoint and in range."""
    out = {}
    for name, (a, b) in (("train", train), ("val", val), ("test", test)):
        if not 0 <= a <= b < n_slices:
            raise ValueError(f"mri {name} slices {a}..{b} outside the volume's 0..{n_slices - 1}")
        out[name] = list(range(a, b + 1))
    seen = [i for v in out.values() for i in v]
    if len(seen) != len(set(seen)):
        raise ValueError(f"mri slice ranges overlap: {train}, {val}, {test}")
    return out
