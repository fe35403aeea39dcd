"""A real BentoML server on 127.0.0.1 serving the CLIPstyler model the smoke pipeline registered."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from components.papers.clipstyler.predict import example_input

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(served):
    return served("clipstyler")  # one server per session (tests/serving/conftest.py)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


CONTENT = png(example_input())


def stylize(url: str, image: bytes = CONTENT, **fields) -> httpx.Response:
    data = {k: str(v) for k, v in fields.items()}
    return httpx.post(f"{url}/stylize", files={"image": ("c.png", image, "image/png")}, data=data, timeout=120)


def test_stylize_returns_a_deterministic_png_and_progress_reports_it(server) -> None:
    a = stylize(server, text="brick wall", iterations=3)
    assert a.status_code == 200, a.text
    assert a.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(a.content))
    assert img.mode == "RGB" and img.size[0] == img.size[1] >= 8
    assert stylize(server, text="brick wall", iterations=3).content == a.content
    assert stylize(server, text="grass", iterations=3).content != a.content
    p = httpx.get(f"{server}/progress", timeout=30)
    assert p.status_code == 200, p.text
    body = p.json()
    assert body["running"] is False and body["iteration"] == body["iterations"] == 3 and body["text"] == "grass"
    assert stylize(server).status_code == 200  # text and iterations default
    big = np.random.default_rng(0).random((300, 200, 3))  # any size: centre-cropped and resized
    assert Image.open(io.BytesIO(stylize(server, png(big), iterations=1).content)).size == img.size


@pytest.mark.parametrize(
    ("fields", "image", "words"),
    [
        ({"iterations": 201}, CONTENT, "iterations"),
        ({"iterations": -1}, CONTENT, "iterations"),
        ({"iterations": 0}, CONTENT, "iterations"),
        ({"text": "x" * 81}, CONTENT, "text"),
        ({"text": "<b>", "iterations": 1}, CONTENT, "text"),
        ({}, b"not an image", "image"),
        ({"iterations": 1}, png(np.zeros((4, 4, 3))), "8x8"),
    ],
)
def test_bad_input_is_400_with_a_message(server, fields: dict, image: bytes, words: str) -> None:
    r = stylize(server, image, **fields)
    assert r.status_code == 400, (r.status_code, r.text)
    assert words in r.json()["error"], r.text
    assert httpx.get(f"{server}/readyz", timeout=10).status_code == 200


def test_a_request_past_its_budget_is_504_and_the_server_lives(served) -> None:
    url = served("clipstyler", budget_s="0.01")
    r = stylize(url, iterations=200)
    assert r.status_code == 504 and "time budget" in r.json()["error"], r.text
    assert httpx.get(f"{url}/progress", timeout=10).status_code == 200
