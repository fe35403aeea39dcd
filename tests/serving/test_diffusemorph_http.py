"""A real BentoML server on 127.0.0.1 serving the DiffuseMorph model the smoke pipeline registered."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(served):
    return served("diffusemorph")  # one server per session (tests/serving/conftest.py)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def faces(size: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage import data
    from skimage.transform import resize

    f = data.lfw_subset()
    return resize(f[0], (size, size), anti_aliasing=True), resize(f[1], (size, size), anti_aliasing=True)


def post(server, moving: bytes, fixed: bytes, **data: str) -> httpx.Response:
    return httpx.post(
        f"{server}/register",
        files={"moving": ("m.png", moving, "image/png"), "fixed": ("f.png", fixed, "image/png")},
        data=data,
        timeout=120,
    )


def test_register_returns_warped_png_and_flow(server) -> None:
    m, f = faces(48)
    r = post(server, png(m), png(f))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert 0 <= float(r.headers["x-folding-percent"]) <= 100 and float(r.headers["x-mean-displacement"]) >= 0
    assert r.headers["x-eta"] == "1"
    warped = np.asarray(Image.open(io.BytesIO(r.content)))
    assert warped.shape == (48, 48)
    r = post(server, png(m), png(f), eta="0.5", **{"return": "flow"})
    assert r.status_code == 200, r.text
    flow = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert flow.shape == (2, 48, 48) and flow.dtype == np.float32 and np.isfinite(flow).all()
    assert float(r.headers["x-mean-displacement"]) == pytest.approx(np.linalg.norm(flow, axis=0).mean(), rel=1e-3)
    assert r.headers["x-eta"] == "0.5"
    rgb = np.stack([m, m[::-1], m.T], axis=2)
    r = post(server, png(rgb), png(f))
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).mode == "RGB", r.text


def test_bad_input_is_400_with_a_message(server) -> None:
    m, f = faces(32)
    cases = {
        "size mismatch": (png(m), png(f[:, :24]), {}, "same size"),
        "not an image": (b"not an image at all", png(f), {}, "PNG"),
        "eta above 1": (png(m), png(f), {"eta": "1.5"}, "eta"),
        "eta below 0": (png(m), png(f), {"eta": "-0.1"}, "eta"),
        "eta not finite": (png(m), png(f), {"eta": "NaN"}, "NaN"),
        "unknown return": (png(m), png(f), {"return": "both"}, "return"),
    }
    for name, (mv, fx, data, word) in cases.items():
        r = post(server, mv, fx, **data)
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert set(r.json()) == {"error"} and word.lower() in r.json()["error"].lower(), (name, r.text)
    r = httpx.post(f"{server}/register", files={"moving": ("m.png", png(m), "image/png")}, timeout=60)
    assert r.status_code == 400 and "fixed" in r.json()["error"], r.text
    big = np.zeros((1100, 8))
    r = post(server, png(big), png(big))
    assert r.status_code == 400 and "1024" in r.json()["error"], r.text
    assert httpx.get(f"{server}/readyz", timeout=10).status_code == 200, "still serving"


def test_openapi_has_an_example_and_bounds(server) -> None:
    spec = httpx.get(f"{server}/docs.json", timeout=30).json()
    op = spec["paths"]["/register"]["post"]
    assert op["description"] or op.get("summary")
    schema = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].split("/")[-1]]
    props = schema["properties"]
    assert props["eta"]["minimum"] == 0 and props["eta"]["maximum"] == 1 and props["eta"]["examples"]
    assert set(props["return"]["enum"]) == {"warped", "flow"} and props["return"]["examples"]
