"""A real BentoML server on 127.0.0.1 serving FeSTA's champion from the smoke pipeline."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(served):
    return served("festa")  # one server per session (tests/serving/conftest.py)


def cxr_png(side: int = 64, rgb: bool = False) -> bytes:
    from components.papers.festa.data import synth

    img = synth(1, side, np.random.default_rng(3), np.array([2]))["image"][0]
    arr = np.round(img * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.stack([arr] * 3, -1) if rgb else arr).save(buf, format="PNG")
    return buf.getvalue()


def post(server, route: str, data: bytes, **kw) -> httpx.Response:
    return httpx.post(f"{server}{route}", files={"image": ("cxr.png", data, "image/png")}, timeout=60, **kw)


@pytest.mark.parametrize("rgb", [False, True])
def test_classify(server, rgb: bool) -> None:
    r = post(server, "/classify", cxr_png(rgb=rgb))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["probabilities"]) == {"normal", "pneumonia-like", "COVID-like"}
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-4
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)


def test_segment_returns_a_mask_of_the_image_size(server) -> None:
    r = post(server, "/segment", cxr_png(72))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    mask = Image.open(io.BytesIO(r.content))
    assert mask.size == (72, 72) and mask.mode == "L"
    values = set(np.unique(np.asarray(mask)).tolist())
    assert values <= {0, 255}
    frac = float(r.headers["x-lesion-fraction"])
    assert 0 <= frac <= 1 and abs(frac - (np.asarray(mask) > 0).mean()) < 1e-6


def test_severity(server) -> None:
    r = post(server, "/severity", cxr_png())
    assert r.status_code == 200, r.text
    assert 0 <= r.json()["severity"] <= 1


@pytest.mark.parametrize("route", ["/classify", "/segment", "/severity"])
@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"image": ("x.png", b"not an image at all", "image/png")}, "not a readable"),
        ({"image": ("x.png", b"", "image/png")}, "empty"),
        ({"image": ("x.png", cxr_png()[:200], "image/png")}, "not a readable"),
        ({"image": ("x.png", cxr_png(4), "image/png")}, "at least"),
        ({"image": ("x.png", b"\0" * (9 * 1024 * 1024), "image/png")}, "limit is"),
        ({}, "image"),
    ],
)
def test_bad_input_is_4xx_with_message(server, route: str, files, fragment: str) -> None:
    r = httpx.post(f"{server}{route}", files=files or None, timeout=30)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert fragment in r.text, r.text
    assert post(server, "/severity", cxr_png()).status_code == 200, "the server keeps serving"


def test_openapi_docs(server) -> None:
    spec = httpx.get(f"{server}/docs.json", timeout=10).json()
    assert {"/classify", "/segment", "/severity"} <= set(spec["paths"])
    assert "arXiv 2111.01338" in spec["info"]["title"]
    schemas = spec["components"]["schemas"]
    assert any("example" in s for s in schemas.values()), "response examples are published"
