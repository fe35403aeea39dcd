"""Write the example inputs the README's curl commands use (``python examples/make_examples.py``).

Everything here is made from data that installed packages bundle (scikit-image's images,
scikit-learn's digits), with fixed seeds, so the files are reproducible and small (about 100 KB in
all). The files are committed; rerun this script after changing it.

``examples/<paper>/<route>.json`` is also the endpoint's example on the service's OpenAPI page
(serving/common.py): for a JSON endpoint the request body itself (``curl -d @<file>``); for a
multipart endpoint the form, a value ``"@name.png"`` naming an example file beside it (the page
shows the curl command that sends it).

Adding a service: add a ``<paper>()`` function below that writes ``examples/<paper>/``, list it in
``MAKERS``, and use the files in the README's curl block for the paper (tests/serving/
test_readme_http.py runs every such block against a real server).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def _png(path: Path, pixels: np.ndarray) -> None:
    """Save float pixels in [0, 1] ((H, W) grey or (H, W, 3) RGB) as an 8-bit PNG."""
    arr = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    path.write_bytes(buf.getvalue())


def _json(path: Path, body: dict) -> None:
    path.write_text(json.dumps(body, separators=(", ", ": ")) + "\n")


def noise2score(out: Path) -> None:
    """noisy.png: a 96x96 crop of skimage's astronaut with Gaussian noise, sigma 25 on 0..255."""
    from skimage import data

    clean = data.astronaut()[30:126, 190:286] / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)
    _png(out / "noisy.png", noisy)
    _json(out / "denoise.json", {"image": "@noisy.png", "noise": "gaussian", "level": 25})
    _json(out / "estimate.json", {"image": "@noisy.png"})


def fractional_lms(out: Path) -> None:
    """An unknown 4-tap FIR system h: input x (white noise), desired d = h * x + noise, 400 samples."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    h = np.array([0.6, -0.3, 0.2, 0.1])
    d = np.convolve(x, h)[: len(x)] + rng.normal(0, 0.01, len(x))
    _json(
        out / "identify.json",
        {
            "x": [round(v, 4) for v in x],
            "d": [round(v, 4) for v in d],
            "taps": 4,
            "algorithm": "flms",
            "step": 0.01,
            "fractional_step": 0.01,
            "order": 0.5,
        },
    )
    _json(out / "filter.json", {"x": [round(v, 4) for v in rng.normal(size=32)]})


def relu_neuron(out: Path) -> None:
    """/predict: two inputs for the registered neuron (dimension 2); /analyze: a teacher's 12 samples."""
    _json(out / "predict.json", {"x": [[1.0, 0.5], [-0.2, 0.3]]})
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(12, 3)).round(3)
    y = np.maximum(X @ np.array([1.0, -0.5, 0.25]), 0).round(4)
    _json(out / "analyze.json", {"X": X.tolist(), "y": y.tolist(), "init_scale": 0.001, "seed": 0})


def ebclr(out: Path) -> None:
    """digit-0.png ... digit-2.png: scikit-learn's 8x8 digits, upscaled to 16x16; the same as JSON."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    picks = [int(np.flatnonzero(digits.target == k)[0]) for k in range(3)]
    for k, i in enumerate(picks):
        big = np.kron(digits.images[i] / 16.0, np.ones((2, 2)))
        _png(out / f"digit-{k}.png", big)
    arrays = [(digits.images[i] / 16.0).round(4).tolist() for i in picks]
    _json(out / "embed.json", {"arrays": arrays})  # or multipart: curl -F images=@digit-0.png -F images=@digit-1.png
    _json(out / "classify.json", {"array": arrays[0]})


def ccdf(out: Path) -> None:
    """Grey 64x64 crops of skimage's camera: lowres.png (16x16, average-pooled x4), image.png and a
    mask.png (white = known) for inpainting, and kspace.npy / mask.npy: its centred orthonormal
    k-space (complex64) under a 4x-accelerated column mask (24 % of the columns, the centre kept)."""
    from skimage import data

    crop = data.camera()[180:244, 220:284] / 255.0
    _png(out / "image.png", crop)
    _png(out / "lowres.png", crop.reshape(16, 4, 16, 4).mean(axis=(1, 3)))
    mask = np.ones_like(crop)
    mask[24:40, 20:44] = 0  # a 16x24 hole to fill
    _png(out / "mask.png", mask)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(crop), norm="ortho")).astype(np.complex64)
    cols = np.zeros(64, dtype=np.float32)
    cols[28:36] = 1  # the 8 central columns
    cols[np.random.default_rng(0).choice(64, 8, replace=False)] = 1
    np.save(out / "kspace.npy", k * cols[None, :], allow_pickle=False)
    np.save(out / "mask.npy", cols, allow_pickle=False)
    _json(out / "super_resolve.json", {"image": "@lowres.png", "scale": 4})
    _json(out / "inpaint.json", {"image": "@image.png", "mask": "@mask.png"})
    _json(out / "mri_reconstruct.json", {"kspace": "@kspace.npy", "mask": "@mask.npy"})
    _json(out / "mri_reconstruct_npy.json", {"kspace": "@kspace.npy", "mask": "@mask.npy"})
    _json(out / "mri_reconstruct_image.json", {"image": "@image.png", "acceleration": 4})


def switchable_cyclegan(out: Path) -> None:
    """volume.npy: a 32^3 speckled tissue phantom (the package's own generator, seed 0) blurred along
    its elevational axis (axis 0, Gaussian sigma 1.5 voxels) as a mechanical 3-D probe blurs it, as
    float32 in [0, 1]; slice.png: its elevational-lateral plane ``volume[:, 16, :]`` (rows =
    elevational axis), the kind of slice /enhance sharpens."""
    import torch

    from components.papers.switchable_cyclegan.phantom import clean_volume, degrade

    gen = torch.Generator().manual_seed(0)
    volume = degrade(clean_volume(32, gen, grain=1.5), sigma=1.5, noise_std=0.01, generator=gen).numpy()
    np.save(out / "volume.npy", volume.astype(np.float32), allow_pickle=False)
    _png(out / "slice.png", volume[:, 16, :])
    _json(out / "enhance.json", {"image": "@slice.png", "alpha": 1.0})
    _json(out / "enhance_volume.json", {"volume": "@volume.npy", "alpha": 0.5})


def diffusemorph(out: Path) -> None:
    """fixed.png: a 64x64 grey crop of skimage's camera; moving.png: the same crop warped by a smooth
    displacement (two Gaussian bumps of up to 2 px, fixed seed) that /register should undo."""
    from scipy.ndimage import gaussian_filter, map_coordinates
    from skimage import data

    fixed = data.camera()[60:188:2, 190:318:2] / 255.0
    rng = np.random.default_rng(0)
    field = np.stack([gaussian_filter(rng.normal(size=(64, 64)), 8) for _ in range(2)])
    field *= 2.0 / np.abs(field).max()
    rows, cols = np.mgrid[0:64, 0:64].astype(float)
    moving = map_coordinates(fixed, [rows + field[0], cols + field[1]], order=1, mode="nearest")
    _png(out / "fixed.png", fixed)
    _png(out / "moving.png", moving)
    _json(out / "register.json", {"moving": "@moving.png", "fixed": "@fixed.png", "eta": 1.0, "return": "warped"})


def diffusionclip(out: Path) -> None:
    """face.png: a drawn frowning face (the model's domain, components/blocks/data/drawings.py), 32x32
    RGB; /manipulate moves it toward the target text ``smiling``."""
    from components.papers.diffusionclip.predict import example_input

    _png(out / "face.png", example_input()["image"])
    _json(out / "manipulate.json", {"image": "@face.png", "target": "smiling", "strength": 1.0})


def festa(out: Path) -> None:
    """cxr.png: a 64x64 synthetic chest X-ray with COVID-like lesions (the generator of the paper's
    synthetic hospitals, components/papers/festa/data.py, seeded)."""
    from components.papers.festa.predict import example_input

    _png(out / "cxr.png", example_input())
    for route in ("classify", "segment", "severity"):
        _json(out / f"{route}.json", {"image": "@cxr.png"})


def clipstyler(out: Path) -> None:
    """content.png: skimage's ``colorwheel`` at 32x32 (not among the CLIP block's training drawings);
    /stylize moves it toward a style text the CLIP block was trained on, with few iterations."""
    from components.papers.clipstyler.predict import example_input

    _png(out / "content.png", example_input())
    _json(out / "stylize.json", {"image": "@content.png", "text": "red and blue stripes", "iterations": 20})


MAKERS = {
    "noise2score": noise2score,
    "fractional_lms": fractional_lms,
    "relu_neuron": relu_neuron,
    "ebclr": ebclr,
    "ccdf": ccdf,
    "switchable_cyclegan": switchable_cyclegan,
    "diffusemorph": diffusemorph,
    "diffusionclip": diffusionclip,
    "festa": festa,
    "clipstyler": clipstyler,
}


def main(argv: list[str]) -> int:
    for name in argv or list(MAKERS):
        out = HERE / name
        out.mkdir(exist_ok=True)
        MAKERS[name](out)
        print(f"examples/{name}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
