"""A real BentoML server on 127.0.0.1 serving the DiffusionCLIP model the smoke pipeline registered."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from components.papers.diffusionclip.predict import example_input

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(served):
    return served("diffusionclip")  # one server per session (tests/serving/conftest.py)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


FACE = png(example_input()["image"])


def manipulate(url: str, image: bytes = FACE, **fields) -> httpx.Response:
    data = {k: str(v) for k, v in fields.items()}
    return httpx.post(f"{url}/manipulate", files={"image": ("face.png", image, "image/png")}, data=data, timeout=120)


def test_targets_lists_the_fine_tuned_models(server) -> None:
    r = httpx.get(f"{server}/targets", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [t["name"] for t in body["targets"]] == ["smiling", "blue"]
    assert body["targets"][0]["target"] == "smiling face" and body["size"] > 0 and 1 <= body["t0"] <= 999
    r = httpx.post(f"{server}/targets", timeout=30)
    assert r.status_code == 405 and "error" in r.json()


def test_manipulate_returns_a_deterministic_png_at_the_model_size(server) -> None:
    size = httpx.get(f"{server}/targets", timeout=30).json()["size"]
    a = manipulate(server, target="smiling", strength=0.7, t0=200)
    assert a.status_code == 200, a.text
    assert a.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(a.content))
    assert img.size == (size, size) and img.mode == "RGB"
    assert manipulate(server, target="smiling", strength=0.7, t0=200).content == a.content
    # strength 0 is the original model alone: the target does not matter
    zero = manipulate(server, target="smiling", strength=0)
    assert zero.status_code == 200 and zero.content == manipulate(server, target="blue", strength=0).content
    assert manipulate(server).status_code == 200  # target, strength and t0 all default
    big = np.random.default_rng(0).random((300, 200, 3))  # any size: centre-cropped and resized
    assert Image.open(io.BytesIO(manipulate(server, png(big)).content)).size == (size, size)


@pytest.mark.parametrize(
    ("fields", "image", "words"),
    [
        ({"target": "zombie"}, FACE, "smiling, blue"),
        ({"strength": 1.5}, FACE, "strength"),
        ({"strength": -0.1}, FACE, "strength"),
        ({"t0": 0}, FACE, "t0"),
        ({"t0": 1000}, FACE, "t0"),
        ({"target": "x" * 40}, FACE, "target"),
        ({}, b"not an image", "image"),
        ({}, png(np.zeros((4, 4, 3))), "8x8"),
    ],
)
def test_bad_input_is_400_with_a_message(server, fields: dict, image: bytes, words: str) -> None:
    r = manipulate(server, image, **fields)
    assert r.status_code == 400, (r.status_code, r.text)
    assert words in r.json()["error"], r.text
    assert httpx.get(f"{server}/readyz", timeout=10).status_code == 200


def test_a_request_past_its_budget_is_504_and_the_server_lives(served) -> None:
    url = served("diffusionclip", budget_s="0.01")
    r = manipulate(url)
    assert r.status_code == 504 and "time budget" in r.json()["error"], r.text
    assert httpx.get(f"{url}/targets", timeout=10).status_code == 200
