"""A real BentoML server on 127.0.0.1 serving the CCDF model the smoke pipeline registered."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(served):
    return served("ccdf")  # one server per session (tests/serving/conftest.py)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def camera(size: int = 32) -> np.ndarray:
    from skimage import data

    return data.camera()[200 : 200 + size, 220 : 220 + size] / 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


def test_super_resolve(server) -> None:
    hr = camera(32)
    lr = hr.reshape(8, 4, 8, 4).mean(axis=(1, 3))
    r = httpx.post(
        f"{server}/super_resolve",
        files={"image": ("lr.png", png(lr), "image/png")},
        data={"scale": "4", "steps": "20", "t0": "0.2"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-nfe"] == "4"
    out = np.asarray(Image.open(io.BytesIO(r.content))) / 255.0
    assert out.shape == (32, 32)
    # data consistency holds: the answer average-pools back to the upload (up to 8-bit rounding and
    # the clip to [0, 1] of pixels the smoke model pushes out of range)
    err = np.abs(out.reshape(8, 4, 8, 4).mean(axis=(1, 3)) - np.round(lr * 255) / 255)
    assert err.mean() < 0.01 and err.max() < 0.1
    rgb = np.stack([lr, lr[::-1], lr.T], axis=2)
    r = httpx.post(
        f"{server}/super_resolve",
        files={"image": ("lr.png", png(rgb), "image/png")},
        data={"scale": "2", "init": "simple"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (16, 16) and Image.open(io.BytesIO(r.content)).mode == "RGB"


def test_inpaint_keeps_known_pixels(server) -> None:
    img, mask = camera(32), np.ones((32, 32))
    mask[8:24, 8:24] = 0
    r = httpx.post(
        f"{server}/inpaint",
        files={"image": ("i.png", png(img * mask), "image/png"), "mask": ("m.png", png(mask), "image/png")},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    out = np.asarray(Image.open(io.BytesIO(r.content))) / 255.0
    assert out.shape == (32, 32)
    known = mask > 0
    assert np.abs(out[known] - np.round(img[known] * 255) / 255).max() < 0.01


def test_mri_from_kspace_and_from_image(server) -> None:
    img = camera(32)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img), norm="ortho"))
    mask = np.zeros((32, 32), np.float32)
    mask[:, ::3] = 1
    mask[:, 14:18] = 1
    files = {
        "kspace": ("k.npy", npy((k * mask).astype(np.complex64)), "application/octet-stream"),
        "mask": ("m.npy", npy(mask), "application/octet-stream"),
    }
    r = httpx.post(f"{server}/mri_reconstruct_npy", files=files, timeout=120)
    assert r.status_code == 200, r.text
    rec = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert rec.shape == (32, 32) and rec.dtype == np.float32 and np.isfinite(rec).all()
    # in the k-space's own scale (the DC line is sampled, so the mean is pinned) and near the truth;
    # quality beyond that is the default scale's business, not the 30-step smoke model's
    assert abs(float(rec.mean()) - float(img.mean())) < 0.05 and psnr(rec, img) > 18
    r = httpx.post(f"{server}/mri_reconstruct", files=files, data={"steps": "10", "t0": "0.5"}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-nfe"] == "5"
    assert Image.open(io.BytesIO(r.content)).size == (32, 32)
    r = httpx.post(
        f"{server}/mri_reconstruct_image",
        files={"image": ("i.png", png(img), "image/png")},
        data={"acceleration": "4"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and Image.open(io.BytesIO(r.content)).size == (32, 32)


K = npy(np.zeros((32, 32), np.complex64))
M = npy(np.ones((32, 32), np.float32))


@pytest.mark.parametrize(
    ("route", "files", "data", "fragment"),
    [
        ("/super_resolve", {"image": ("x.png", b"not an image", "image/png")}, {}, "not a readable"),
        ("/super_resolve", {"image": ("x.png", png(np.zeros((8, 8))), "image/png")}, {"scale": "3"}, "init=simple"),
        ("/super_resolve", {"image": ("x.png", png(np.zeros((8, 8))), "image/png")}, {"scale": "16"}, "scale"),
        ("/super_resolve", {"image": ("x.png", png(np.zeros((8, 100))), "image/png")}, {}, "at most"),
        ("/super_resolve", {"image": ("x.png", png(np.zeros((8, 8))), "image/png")}, {"t0": "0"}, "t0"),
        ("/super_resolve", {"image": ("x.png", png(np.zeros((8, 8))), "image/png")}, {"steps": "5000"}, "steps"),
        (
            "/super_resolve",
            {"image": ("x.png", png(np.zeros((8, 8))), "image/png")},
            {"steps": "1000", "t0": "1"},
            "network evaluations",
        ),
        (
            "/inpaint",
            {
                "image": ("x.png", png(np.zeros((16, 16))), "image/png"),
                "mask": ("m.png", png(np.ones((8, 16))), "image/png"),
            },
            {},
            "mask is",
        ),
        ("/inpaint", {"image": ("x.png", png(np.zeros((16, 16))), "image/png")}, {}, "mask"),
        (
            "/mri_reconstruct",
            {"kspace": ("k.npy", K, "application/octet-stream"), "mask": ("m.npy", npy(np.ones((16, 32))), "a/b")},
            {},
            "does not match",
        ),
        (
            "/mri_reconstruct",
            {"kspace": ("k.npy", npy(np.full((32, 32), np.nan, np.complex64)), "a/b"), "mask": ("m.npy", M, "a/b")},
            {},
            "non-finite",
        ),
        (
            "/mri_reconstruct",
            {"kspace": ("k.npy", npy(np.zeros((600, 600), np.complex64)), "a/b"), "mask": ("m.npy", M, "a/b")},
            {},
            "limit is",
        ),
        ("/mri_reconstruct", {"kspace": ("k.npy", b"garbage", "a/b"), "mask": ("m.npy", M, "a/b")}, {}, ".npy"),
        (
            "/mri_reconstruct",
            {"kspace": ("k.npy", npy(np.array(["a"])), "a/b"), "mask": ("m.npy", M, "a/b")},
            {},
            "kspace",
        ),
        ("/mri_reconstruct", {"kspace": ("k.npy", K, "a/b")}, {}, "mask"),
        (
            "/mri_reconstruct",
            {"kspace": ("k.npy", K, "a/b"), "mask": ("m.npy", npy(np.full((32, 32), 0.5)), "a/b")},
            {},
            "only 0 and 1",
        ),
        (
            "/mri_reconstruct",
            {
                "kspace": ("k.npy", npy(np.zeros((31, 31), np.complex64)), "a/b"),
                "mask": ("m.npy", npy(np.ones((31, 31))), "a/b"),
            },
            {},
            "multiples",
        ),
        (
            "/mri_reconstruct_image",
            {"image": ("x.png", png(np.zeros((32, 32))), "image/png")},
            {"acceleration": "100"},
            "acceleration",
        ),
        ("/mri_reconstruct_image", {"image": ("x.png", png(np.zeros((31, 32))), "image/png")}, {}, "multiples"),
        (
            "/mri_reconstruct_npy",
            {"kspace": ("k.npy", b"\0" * (17 * 1024 * 1024), "a/b"), "mask": ("m.npy", M, "a/b")},
            {},
            "limit is",
        ),  # 413
    ],
)
def test_bad_input_is_4xx_with_message(server, route: str, files: dict, data: dict, fragment: str) -> None:
    r = httpx.post(f"{server}{route}", files=files, data=data, timeout=60)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert fragment in r.text, r.text


def test_openapi_docs(server) -> None:
    spec = httpx.get(f"{server}/docs.json", timeout=10).json()
    assert {"/super_resolve", "/inpaint", "/mri_reconstruct", "/mri_reconstruct_npy", "/mri_reconstruct_image"} <= set(
        spec["paths"]
    )
    assert httpx.get(f"{server}/docs", timeout=10).status_code == 200
