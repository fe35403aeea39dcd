"""A real BentoML server on 127.0.0.1 serving the switchable CycleGAN the smoke pipeline registered."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(served):
    return served("switchable_cyclegan")  # one server per session (tests/serving/conftest.py)


@pytest.fixture(scope="module")
def model(smoke_repo):
    """The model the server serves, loaded in-process from the smoke run's export (same weights)."""
    from components.papers.switchable_cyclegan import PAPER

    return PAPER.load(smoke_repo.path / "models" / "switchable_cyclegan" / "model")


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def phantom_volume() -> np.ndarray:
    """A degraded 16^3 phantom (the kind the model was trained on), float32 in [0, 1]."""
    import torch

    from components.papers.switchable_cyclegan.phantom import clean_volume, degrade

    gen = torch.Generator().manual_seed(3)
    return degrade(clean_volume(16, gen, 1.5), 1.5, 0.01, gen).numpy().astype(np.float32)


def test_enhance_slice_matches_the_model_at_every_alpha(server, model) -> None:
    from components.papers.switchable_cyclegan.predict import predict

    vol = phantom_volume()
    s8 = np.round(vol[:, 5, :] * 255).astype(np.uint8)
    answers = {}
    for alpha in (0.0, 0.5, 1.0):
        r = httpx.post(
            f"{server}/enhance",
            files={"image": ("s.png", png(s8), "image/png")},
            data={"alpha": str(alpha)},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png" and r.headers["x-alpha"] == f"{alpha:g}"
        out = Image.open(io.BytesIO(r.content))
        assert out.mode == "L" and out.size == (16, 16)
        answers[alpha] = np.asarray(out, np.float32) / 255
        want = predict(model, s8, alpha)  # the served answer is the model's, up to 8-bit rounding
        assert np.abs(answers[alpha] - want).max() <= 0.5 / 255 + 1e-6
    assert not np.array_equal(answers[0.0], answers[1.0]), "alpha switches the direction"
    rgb = np.stack([s8, s8, s8], axis=2)
    r = httpx.post(f"{server}/enhance", files={"image": ("s.png", png(rgb), "image/png")}, timeout=60)
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content))), np.round(answers[1.0] * 255))


def test_enhance_volume_returns_npy_of_the_model(server, model) -> None:
    from components.papers.switchable_cyclegan.predict import predict

    vol = phantom_volume()[:, :12, :]  # (16, 12, 16): sides not all equal, 12 not a multiple of 4 x 2
    r = httpx.post(
        f"{server}/enhance_volume",
        files={"volume": ("v.npy", npy(vol), "application/octet-stream")},
        data={"alpha": "0.75"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-alpha"] == "0.75"
    out = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert out.shape == vol.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, predict(model, vol, 0.75), atol=1e-5)
    r = httpx.post(
        f"{server}/enhance_volume",
        files={"volume": ("v.npy", npy(np.round(vol * 255).astype(np.uint8)), "application/octet-stream")},
        timeout=60,
    )
    assert r.status_code == 200 and np.load(io.BytesIO(r.content)).shape == vol.shape, r.text


GOOD_PNG = png(np.full((16, 16), 100, np.uint8))
GOOD_NPY = npy(np.full((8, 8, 8), 0.5, np.float32))


@pytest.mark.parametrize(
    ("route", "files", "data", "fragment"),
    [
        ("/enhance", {"image": ("x.png", GOOD_PNG, "image/png")}, {"alpha": "1.5"}, "alpha"),
        ("/enhance", {"image": ("x.png", GOOD_PNG, "image/png")}, {"alpha": "-0.1"}, "alpha"),
        ("/enhance", {"image": ("x.png", GOOD_PNG, "image/png")}, {"alpha": "nan"}, "alpha"),
        ("/enhance", {"image": ("x.png", GOOD_PNG, "image/png")}, {"alpha": "high"}, "alpha"),
        ("/enhance", {"image": ("x.png", b"not an image", "image/png")}, {}, "not a readable"),
        ("/enhance", {"image": ("x.png", png(np.zeros((8, 1100), np.uint8)), "image/png")}, {}, "1024"),
        ("/enhance", {"image": ("x.png", png(np.zeros((4, 16), np.uint8)), "image/png")}, {}, "at least"),
        ("/enhance", {}, {"alpha": "0.5"}, "image"),
        ("/enhance", {"image": ("x.png", GOOD_PNG, "image/png"), "volume": ("v.npy", GOOD_NPY, "a/b")}, {}, "volume"),
        ("/enhance_volume", {"volume": ("v.npy", GOOD_NPY, "a/b")}, {"alpha": "2"}, "alpha"),
        ("/enhance_volume", {"volume": ("v.npy", npy(np.zeros((8, 8), np.float32)), "a/b")}, {}, "3-D"),
        ("/enhance_volume", {"volume": ("v.npy", npy(np.zeros((2, 8, 8, 8), np.float32)), "a/b")}, {}, "3-D"),
        ("/enhance_volume", {"volume": ("v.npy", npy(np.full((8, 8, 8), 3.0)), "a/b")}, {}, "[0, 1]"),
        ("/enhance_volume", {"volume": ("v.npy", npy(np.full((8, 8, 8), np.nan)), "a/b")}, {}, "non-finite"),
        ("/enhance_volume", {"volume": ("v.npy", npy(np.zeros((8, 8, 300), np.uint8)), "a/b")}, {}, "256"),
        ("/enhance_volume", {"volume": ("v.npy", npy(np.zeros((3, 8, 8), np.uint8)), "a/b")}, {}, "[4, 256]"),
        ("/enhance_volume", {"volume": ("v.npy", npy(np.zeros((129, 128, 128), np.uint8)), "a/b")}, {}, "at most"),
        ("/enhance_volume", {"volume": ("v.npy", npy(np.zeros((8, 8, 8), np.complex64)), "a/b")}, {}, "numeric"),
        ("/enhance_volume", {"volume": ("v.npy", npy(np.array(["a"] * 8)), "a/b")}, {}, "numbers"),
        ("/enhance_volume", {"volume": ("v.npy", b"garbage", "a/b")}, {}, ".npy"),
        ("/enhance_volume", {"volume": ("v.npy", GOOD_NPY[:-100], "a/b")}, {}, "truncated"),
        ("/enhance_volume", {"volume": ("v.npy", b"\0" * (17 * 1024 * 1024), "a/b")}, {}, "limit is"),  # 413
        ("/enhance_volume", {"image": ("x.png", GOOD_PNG, "image/png")}, {}, "volume"),
    ],
)
def test_bad_input_is_4xx_with_message(server, route: str, files: dict, data: dict, fragment: str) -> None:
    r = httpx.post(f"{server}{route}", files=files, data=data, timeout=60)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert set(r.json()) == {"error"} and fragment in r.json()["error"], r.text
    assert httpx.get(f"{server}/readyz", timeout=10).status_code == 200


def test_request_past_its_budget_answers_504(served) -> None:
    url = served("switchable_cyclegan", budget_s="0")  # a server whose request budget is already spent
    r = httpx.post(f"{url}/enhance_volume", files={"volume": ("v.npy", GOOD_NPY, "a/b")}, timeout=60)
    assert r.status_code == 504 and "time budget" in r.json()["error"], r.text


def test_openapi_docs_with_examples(server) -> None:
    spec = httpx.get(f"{server}/docs.json", timeout=10).json()
    assert {"/enhance", "/enhance_volume"} <= set(spec["paths"])
    assert "arXiv 2112.02896" in spec["info"]["title"]
    for route in ("/enhance", "/enhance_volume"):
        body = spec["paths"][route]["post"]["requestBody"]["content"]
        schema = next(iter(body.values()))["schema"]
        alpha = schema["properties"]["alpha"]
        assert alpha["minimum"] == 0 and alpha["maximum"] == 1 and alpha["examples"] == [1.0, 0.5], alpha
    assert httpx.get(f"{server}/docs", timeout=10).status_code == 200
