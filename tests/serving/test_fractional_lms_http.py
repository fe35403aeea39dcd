"""A real BentoML server on 127.0.0.1 serving the fractional-LMS model registered by the smoke pipeline."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(served):
    return served("fractional_lms")  # one server per session (tests/serving/conftest.py)


def system(n: int = 2000, seed: int = 0) -> tuple[list[float], list[float], np.ndarray]:
    rng = np.random.default_rng(seed)
    w = np.array([0.6, -0.4, 0.2, -0.1])
    x = rng.standard_normal(n)
    d = np.convolve(x, w)[:n] + 0.01 * rng.standard_normal(n)
    return x.tolist(), d.tolist(), w


@pytest.mark.parametrize("algorithm", ["lms", "nlms", "flms", "fnlms", "mflms"])
def test_identify_recovers_the_system(server, algorithm: str) -> None:
    x, d, w = system()
    step = 0.1 if algorithm in ("nlms", "fnlms") else 0.01
    body = {"x": x, "d": d, "taps": 4, "algorithm": algorithm, "step": step, "fractional_step": step, "order": 0.5}
    r = httpx.post(f"{server}/identify", json=body, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert np.allclose(out["weights"], w, atol=0.05), out["weights"]
    assert out["mse_db"][-1] < out["mse_db"][0] - 10 and out["samples"] == 2000


def test_filter_uses_the_registered_system(server, smoke_repo) -> None:
    from components.papers.fractional_lms.model import load

    x = np.random.default_rng(1).standard_normal(64)
    r = httpx.post(f"{server}/filter", json={"x": x.tolist()}, timeout=30)
    assert r.status_code == 200, r.text
    weights = np.array(r.json()["weights"])
    assert np.allclose(r.json()["y"], np.convolve(x, weights)[:64])
    exported = load(smoke_repo.path / "models" / "fractional_lms" / "model").weights
    assert np.allclose(weights, exported)


x, d, _ = system(100)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"x": x, "d": d, "algorithm": "flms_published", "taps": 4, "step": 0.05}, "published form"),
        ({"x": x, "d": d[:-1]}, "same length"),
        ({"x": x, "d": d, "algorithm": "rls"}, "algorithm"),
        ({"x": x, "d": d, "order": 1.5}, "order"),
        ({"x": x, "d": d, "order": 0}, "order"),
        ({"x": x, "d": d, "taps": 100}, "taps"),
        ({"x": x, "d": d, "step": -1}, "step"),
        ({"x": x[:5], "d": d[:5]}, "x"),
        ({"x": [1e9] * 20, "d": [0.0] * 20}, "x"),
        ({"x": x}, "d"),
        ({"x": [0.0] * 200_000, "d": [0.0] * 200_000}, "x"),
    ],
)
def test_bad_input_is_4xx_with_message(server, body: dict, fragment: str) -> None:
    r = httpx.post(f"{server}/identify", json=body, timeout=60)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert fragment in r.text, r.text[:500]


def test_non_finite_and_oversized_bodies(server) -> None:
    raw = '{"x": [NaN' + ", 0.0" * 20 + '], "d": [' + ", ".join(["0.0"] * 21) + "]}"
    r = httpx.post(f"{server}/identify", content=raw, headers={"content-type": "application/json"}, timeout=30)
    assert 400 <= r.status_code < 500, r.text
    big = b'{"x": [' + b"0.0, " * 2_000_000 + b'0.0], "d": []}'
    r = httpx.post(f"{server}/identify", content=big, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413 and "limit" in r.text
    assert httpx.post(f"{server}/filter", json={"x": [0.0] * 32}, timeout=30).status_code == 200, "still serving"
