"""A real BentoML server on 127.0.0.1 serving the registry's champion from the smoke pipeline."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(served):
    return served("noise2score")  # one server per session (tests/serving/conftest.py)


def to_png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def noisy_pair(kind: str) -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    clean = data.camera()[150:278, 200:328] / 255.0 if kind == "grey" else data.astronaut()[20:148, 180:308] / 255.0
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 50 / 255, clean.shape), 0, 1)
    noisy = np.round(noisy * 255) / 255  # what the PNG upload carries
    return clean, noisy


@pytest.mark.parametrize("kind", ["grey", "rgb"])
@pytest.mark.parametrize("form", [{"noise": "gaussian", "level": "50"}, {"noise": "auto"}])
def test_denoise_improves_psnr(server, kind: str, form: dict) -> None:
    clean, noisy = noisy_pair(kind)
    r = httpx.post(
        f"{server}/denoise", files={"image": ("noisy.png", to_png(noisy), "image/png")}, data=form, timeout=60
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    out = Image.open(io.BytesIO(r.content))
    assert out.size == (noisy.shape[1], noisy.shape[0]) and out.mode == ("L" if kind == "grey" else "RGB")
    assert r.headers["x-noise-family"] in ("gaussian", "poisson", "gamma")
    denoised = np.asarray(out) / 255.0
    if form["noise"] == "gaussian":  # the known noise model: the paper's setting
        assert psnr(denoised, clean) > psnr(noisy, clean) + 0.5
    else:  # blind: a valid image of the same size, and no worse than what came in by more than 1 dB
        assert psnr(denoised, clean) > psnr(noisy, clean) - 1.0


def test_estimate(server) -> None:
    _, noisy = noisy_pair("grey")
    r = httpx.post(f"{server}/estimate", files={"image": ("n.png", to_png(noisy), "image/png")}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["family"] in ("gaussian", "poisson", "gamma") and body["level"] > 0


@pytest.mark.parametrize(
    ("files", "data", "fragment"),
    [
        ({"image": ("x.png", b"not an image at all", "image/png")}, {}, "not a readable"),
        ({"image": ("x.png", b"", "image/png")}, {}, "empty"),
        (
            {"image": ("x.png", to_png(np.random.default_rng(0).random((64, 64)))[:300], "image/png")},
            {},
            "not a readable",
        ),
        ({"image": ("x.png", to_png(np.zeros((8, 2100))), "image/png")}, {}, "at most"),
        ({"image": ("x.png", to_png(np.zeros((32, 32))), "image/png")}, {"noise": "laplace"}, "noise"),
        ({"image": ("x.png", to_png(np.zeros((32, 32))), "image/png")}, {"level": "-1"}, "level"),
        ({"image": ("x.png", to_png(np.zeros((32, 32))), "image/png")}, {"level": "nan"}, "level"),
        ({"image": ("x.png", to_png(np.zeros((32, 32))), "image/png")}, {"level": "abc"}, "level"),
        ({"image": ("x.png", b"\0" * (9 * 1024 * 1024), "image/png")}, {}, "limit is"),  # 413 before parsing
        ({}, {}, "image"),
    ],
)
def test_bad_input_is_4xx_with_message(server, files, data, fragment: str) -> None:
    r = httpx.post(f"{server}/denoise", files=files or None, data=data, timeout=30)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert fragment in r.text, r.text
    ok = httpx.post(
        f"{server}/estimate", files={"image": ("n.png", to_png(noisy_pair("grey")[1]), "image/png")}, timeout=60
    )
    assert ok.status_code == 200, "the server keeps serving after a bad request"


def test_openapi_docs(server) -> None:
    assert httpx.get(f"{server}/", timeout=10).status_code == 200  # Swagger UI
    assert "swagger" in httpx.get(f"{server}/docs", timeout=10).text.lower()  # serving/asgi.py DocsPage
    spec = httpx.get(f"{server}/docs.json", timeout=10).json()
    assert "/denoise" in spec["paths"] and "/estimate" in spec["paths"]
