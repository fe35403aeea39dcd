"""A real BentoML server on 127.0.0.1 serving the EBCLR version the smoke pipeline registered."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(served):
    return served("ebclr")  # one server per session (tests/serving/conftest.py)


def digits(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images[:n] / 16.0).astype(np.float32)


def to_png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_embed_json_batch_and_files_agree(server) -> None:
    imgs = digits(3)
    r = httpx.post(f"{server}/embed", json={"arrays": imgs.tolist()}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    emb = np.array(body["embeddings"])
    assert body["count"] == 3 and emb.shape == (3, body["dim"]) and np.isfinite(emb).all()
    assert not np.allclose(emb[0], emb[1])
    # the same images as PNG uploads (8-bit quantised) give nearly the same embeddings
    files = [("images", (f"{i}.png", to_png(im), "image/png")) for i, im in enumerate(imgs)]
    r2 = httpx.post(f"{server}/embed", files=files, timeout=30)
    assert r2.status_code == 200, r2.text
    assert np.allclose(np.array(r2.json()["embeddings"]), emb, atol=0.05)
    one = httpx.post(f"{server}/embed", json={"arrays": imgs[0].tolist()}, timeout=30).json()  # one (H, W) image
    assert np.allclose(one["embeddings"][0], emb[0], atol=1e-5)


def test_classify(server) -> None:
    for body in ({"array": digits(1)[0].tolist()}, None):
        if body is None:
            r = httpx.post(
                f"{server}/classify", files={"image": ("d.png", to_png(digits(1)[0]), "image/png")}, timeout=30
            )
        else:
            r = httpx.post(f"{server}/classify", json=body, timeout=30)
        assert r.status_code == 200, r.text
        out = r.json()
        probs = out["probabilities"]
        assert set(probs) == {str(i) for i in range(10)} and abs(sum(probs.values()) - 1) < 1e-4
        assert out["label"] == max(probs, key=probs.get)


def test_concurrent_requests_are_batched_without_errors(server) -> None:
    imgs = digits(32)

    def one(i: int) -> int:
        return httpx.post(f"{server}/embed", json={"arrays": imgs[i : i + 2].tolist()}, timeout=60).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(24)))
    assert codes == [200] * 24


def test_concurrency_32_is_not_refused(server) -> None:
    """32 concurrent clients stay under max_concurrency 64: no 429 (the old self-proxy counted each twice)."""
    imgs = digits(4)
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64)) as client, ThreadPoolExecutor(32) as pool:
        codes = list(
            pool.map(lambda i: client.post(f"{server}/embed", json={"arrays": imgs.tolist()}).status_code, range(96))
        )
    assert codes == [200] * 96, sorted(set(codes))


@pytest.mark.parametrize(
    ("route", "kwargs", "fragment"),
    [
        ("/embed", {"json": {}}, "either"),
        ("/embed", {"json": {"arrays": [[1, 2], [3]]}}, "inhomogeneous"),
        ("/embed", {"json": {"arrays": np.full((2, 16, 16), 2.0).tolist()}}, "[0, 1]"),
        ("/embed", {"json": {"arrays": np.zeros((65, 8, 8)).tolist()}}, "between 1 and 64"),
        ("/embed", {"json": {"arrays": np.zeros((1, 600, 8)).tolist()}}, "sides"),
        ("/embed", {"json": {"arrays": [[["a"]]]}}, "could not convert"),
        ("/embed", {"files": [("images", ("x.png", b"not an image", "image/png"))]}, "not a readable"),
        (
            "/embed",
            {"content": b"\0" * (17 * 1024 * 1024), "headers": {"content-type": "application/json"}},
            "limit is",
        ),
        ("/classify", {"json": {"array": np.zeros((2, 16, 16)).tolist()}}, "(N, H, W, C)"),
        ("/classify", {"files": [("image", ("a.png", to_png(np.zeros((16, 16))), "image/png"))] * 2}, "exactly one"),
    ],
)
def test_bad_input_is_4xx_with_message(server, route: str, kwargs: dict, fragment: str) -> None:
    r = httpx.post(f"{server}{route}", timeout=30, **kwargs)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert fragment in r.text, r.text
    ok = httpx.post(f"{server}/classify", json={"array": digits(1)[0].tolist()}, timeout=30)
    assert ok.status_code == 200, "the server keeps serving after a bad request"


def test_openapi_docs(server) -> None:
    spec = httpx.get(f"{server}/docs.json", timeout=10).json()
    assert {"/embed", "/classify"} <= set(spec["paths"]) and "/encode_batch" not in spec["paths"]
    assert "EBCLR" in spec["info"]["title"] and spec["info"]["version"] != "None"
