"""No server-side fetch: a URL (or any text) sent where a file is expected is refused, never fetched.

BentoML 1.4's ``MultipartSerde.ensure_file`` GETs any plain string sent in a file field (and its
``JSONSerde`` a JSON body that is a URL, for endpoints with file fields). With uvloop installed its
connection guard is patched process-wide and restored by whichever request ends first, so under
concurrency 53 of 80 such requests were fetched and answered 200 (issue 18). serving/edge.py
replaces that step; this test runs the servers under uvloop, 16 requests at a time, against a
local HTTP server that counts what reaches it.
"""

from __future__ import annotations

import http.server
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        _Counting.hits.append(self.path)
        buf = io.BytesIO()
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(buf, format="PNG")
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.end_headers()
        self.wfile.write(buf.getvalue())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def target():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Counting.hits.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_uvloop_is_installed() -> None:
    import uvloop  # noqa: F401 - the condition under which the fetch raced (pyproject's test extra)


@pytest.mark.parametrize(
    ("paper", "route", "field"),
    [
        ("noise2score", "/denoise", "image"),
        ("noise2score", "/estimate", "image"),
        ("ebclr", "/embed", "images"),
        ("ccdf", "/mri_reconstruct", "kspace"),
        ("ccdf", "/super_resolve", "image"),
    ],
)
def test_url_in_a_file_field_is_refused_not_fetched(served, target, paper: str, route: str, field: str) -> None:
    url = served(paper)
    before = len(_Counting.hits)
    link = f"{target}/x.png"

    def one(i: int) -> httpx.Response:
        kind = i % 3
        if kind == 0:  # a form field holding the URL
            return httpx.post(f"{url}{route}", data={field: link}, timeout=60)
        if kind == 1:  # the whole JSON body a URL (BentoML's JSONSerde fetched it)
            return httpx.post(
                f"{url}{route}", content=f'"{link}"', headers={"content-type": "application/json"}, timeout=60
            )
        return httpx.post(f"{url}{route}", json={field: link}, timeout=60)  # a JSON field holding the URL

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(80)))
    assert [r.status_code for r in answers] == [400] * 80, sorted({(r.status_code, r.text[:120]) for r in answers})
    assert all(set(r.json()) == {"error"} for r in answers)
    assert len(_Counting.hits) == before, f"the server fetched {len(_Counting.hits) - before} URLs"
    assert "not fetched" in answers[0].json()["error"]
