"""Every class of malformed request the fuzz of issue 18 drew a 500 with, against every endpoint of
every service: each answers 4xx with ``{"error": "<message>"}`` (the guard of serving/edge.py and
serving/asgi.py), and the server keeps serving."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

# service -> endpoint -> its file fields (empty for JSON-only endpoints)
ENDPOINTS: dict[str, dict[str, tuple[str, ...]]] = {
    "noise2score": {"/denoise": ("image",), "/estimate": ("image",)},
    "fractional_lms": {"/identify": (), "/filter": ()},
    "relu_neuron": {"/predict": (), "/analyze": ()},
    "ebclr": {"/embed": ("images",), "/classify": ("image",)},
    "ccdf": {
        "/super_resolve": ("image",),
        "/inpaint": ("image", "mask"),
        "/mri_reconstruct": ("kspace", "mask"),
        "/mri_reconstruct_npy": ("kspace", "mask"),
        "/mri_reconstruct_image": ("image",),
    },
    "switchable_cyclegan": {"/enhance": ("image",), "/enhance_volume": ("volume",)},
    "diffusemorph": {"/register": ("moving", "fixed")},
    "diffusionclip": {"/manipulate": ("image",)},
    "festa": {"/classify": ("image",), "/segment": ("image",), "/severity": ("image",)},
    "clipstyler": {"/stylize": ("image",)},
}
# a non-file field of each (paper, route) that has one; "x" (an unknown field) for the others
# (a form field's text is parsed as JSON when it parses, as BentoML does)
TEXT_FIELD: dict[tuple[str, str], str] = {
    ("noise2score", "/denoise"): "level",
    ("fractional_lms", "/identify"): "x",
    ("fractional_lms", "/filter"): "x",
    ("relu_neuron", "/predict"): "x",
    ("relu_neuron", "/analyze"): "X",
    ("ebclr", "/embed"): "arrays",
    ("ebclr", "/classify"): "array",
    ("ccdf", "/super_resolve"): "steps",
    ("ccdf", "/inpaint"): "steps",
    ("ccdf", "/mri_reconstruct"): "steps",
    ("ccdf", "/mri_reconstruct_npy"): "steps",
    ("ccdf", "/mri_reconstruct_image"): "acceleration",
    ("switchable_cyclegan", "/enhance"): "alpha",
    ("switchable_cyclegan", "/enhance_volume"): "alpha",
    ("diffusemorph", "/register"): "eta",
    ("diffusionclip", "/manipulate"): "strength",
    ("clipstyler", "/stylize"): "iterations",
}
CASES = [(paper, route) for paper, routes in ENDPOINTS.items() for route in routes]


def png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def huge_npy() -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    return buf.getvalue() + b"\0" * 64


JSON = {"content-type": "application/json"}
DEEP = b"[" * 100_000 + b"]" * 100_000
BAD_REQUESTS = {
    "a form field of JSON nested past the recursion limit": lambda text, files: {"data": {text: DEEP.decode()}},
    "a form field holding an integer of 5000 digits": lambda text, files: {"data": {text: "9" * 5000}},
    "a form field holding 1e400": lambda text, files: {"data": {text: "1e400"}},
    "json nested past the recursion limit": lambda text, files: {"content": b'{"x": ' + DEEP + b"}", "headers": JSON},
    "an integer of 5000 digits": lambda text, files: {"content": b'{"x": [' + b"9" * 5000 + b"]}", "headers": JSON},
    "a number that overflows a float": lambda text, files: {
        "content": b'{"x": [1e400], "level": 1e999}',
        "headers": JSON,
    },
    "a JSON body that is a URL": lambda text, files: {"content": b'"http://127.0.0.1:9/x.png"', "headers": JSON},
    "an unknown field holding binary data": lambda text, files: {
        "files": {"image_" if files else "zz": (None, b"\xff\xfe\x00\x81binary")}
    },
    "a known field holding binary data": lambda text, files: {
        "files": {(files or ("x",))[0]: (None, b"\xff\xfe\x00\x81")}
    },
    "multipart without a boundary": lambda text, files: {
        "content": b"--x\r\n\r\n",
        "headers": {"content-type": "multipart/form-data"},
    },
    "over 1000 fields": lambda text, files: {"data": {f"f{i}": "1" for i in range(1001)}},
    "a filename over 255 bytes": lambda text, files: {
        "files": {(files or ("x",))[0]: ("a" * 300 + ".png", png(), "image/png")}
    },
    "a URL in a file field": lambda text, files: {"data": {(files or ("x",))[0]: "http://127.0.0.1:9/x.png"}},
}


def test_every_text_field_names_a_listed_endpoint() -> None:
    assert set(TEXT_FIELD) <= set(CASES), set(TEXT_FIELD) - set(CASES)


@pytest.mark.parametrize("kind", list(BAD_REQUESTS))
@pytest.mark.parametrize(("paper", "route"), CASES)
def test_malformed_request_is_4xx_with_one_error_shape(served, paper: str, route: str, kind: str) -> None:
    url = served(paper)
    r = httpx.post(
        f"{url}{route}", timeout=60, **BAD_REQUESTS[kind](TEXT_FIELD.get((paper, route), "x"), ENDPOINTS[paper][route])
    )
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body


def test_overflowing_level_and_huge_npy_header(served) -> None:
    r = httpx.post(
        f"{served('noise2score')}/denoise",
        files={"image": ("x.png", png(), "image/png")},
        data={"noise": "gaussian", "level": "1e200"},
        timeout=60,
    )
    assert r.status_code == 400 and "level" in r.json()["error"], r.text
    m = io.BytesIO()
    np.save(m, np.ones((32, 32), np.float32))
    for route in ("/mri_reconstruct", "/mri_reconstruct_npy"):
        r = httpx.post(
            f"{served('ccdf')}{route}",
            files={"kspace": ("k.npy", huge_npy(), "a/b"), "mask": ("m.npy", m.getvalue(), "a/b")},
            timeout=60,
        )
        assert r.status_code == 400 and "declares shape (1000000, 1000000)" in r.json()["error"], r.text


@pytest.mark.parametrize("paper", list(ENDPOINTS))
def test_routing_errors_have_the_same_shape(served, paper: str) -> None:
    url = served(paper)
    for method, route in (("GET", "/no_such_route"), ("GET", next(iter(ENDPOINTS[paper])))):
        r = httpx.request(method, f"{url}{route}", timeout=30)
        assert r.status_code in (404, 405) and set(r.json()) == {"error"}, r.text
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200, "still serving"


@pytest.mark.parametrize("paper", list(ENDPOINTS))
def test_openapi_info(served, paper: str) -> None:
    info = httpx.get(f"{served(paper)}/docs.json", timeout=30).json()["info"]
    assert "arXiv" in info["title"] and info["description"] and info["version"] != "None", info
