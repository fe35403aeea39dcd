"""A real BentoML server on 127.0.0.1 serving the single ReLU neuron registered by the smoke pipeline."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(served):
    return served("relu_neuron")  # one server per session (tests/serving/conftest.py)


def test_predict_matches_the_registered_neuron(server, smoke_repo) -> None:
    from components.papers.relu_neuron.model import load

    neuron = load(smoke_repo.path / "models" / "relu_neuron" / "model")
    x = np.random.default_rng(0).standard_normal((7, len(neuron.w)))
    r = httpx.post(f"{server}/predict", json={"x": x.tolist()}, timeout=30)
    assert r.status_code == 200, r.text
    assert np.allclose(r.json()["y"], np.maximum(x @ neuron.w, 0)) and np.allclose(r.json()["w"], neuron.w)


def test_analyze_runs_the_flow(server) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 2))
    v = np.array([0.6, -0.8])
    body = {"X": x.tolist(), "y": np.maximum(x @ v, 0).tolist(), "init_scale": 1e-3, "seed": 3}
    r = httpx.post(f"{server}/analyze", json=body, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["converged"] and out["final_loss"] < 1e-10 and np.allclose(out["w"], v, atol=1e-5)
    assert out["norm"][-1] > 100 * out["norm"][0] and len(out["time"]) == len(out["norm"])
    assert set(out["support_vectors"]) == set(np.flatnonzero(x @ v > 0).tolist())


rows = np.random.default_rng(2).standard_normal((5, 2)).tolist()


@pytest.mark.parametrize(
    ("route", "body", "fragment"),
    [
        ("/predict", {"x": [[1.0, 2.0, 3.0]]}, "dimension"),
        ("/predict", {"x": []}, "x"),
        ("/predict", {"x": [[1e9, 0.0]]}, "x"),
        ("/analyze", {"X": rows, "y": [0.0] * 4}, "rows"),
        ("/analyze", {"X": [[1.0], [1.0, 2.0]], "y": [0.0, 1.0]}, "same length"),
        ("/analyze", {"X": rows, "y": [0.0] * 5, "init_scale": 0}, "init_scale"),
        ("/analyze", {"X": rows, "y": [0.0] * 5, "init_scale": 1e3}, "init_scale"),
        ("/analyze", {"X": rows, "y": [0.0] * 5, "seed": -1}, "seed"),
        ("/analyze", {"X": [[0.0] * 201], "y": [0.0]}, "X"),
        ("/analyze", {"X": [[0.0, 1.0]] * 201, "y": [0.0] * 201}, "X"),
        ("/analyze", {"y": [0.0]}, "X"),
    ],
)
def test_bad_input_is_4xx_with_message(server, route: str, body: dict, fragment: str) -> None:
    r = httpx.post(f"{server}{route}", json=body, timeout=30)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert fragment in r.text, r.text[:500]


def test_non_finite_and_oversized_bodies(server) -> None:
    raw = '{"X": [[NaN, 1.0], [0.0, 1.0]], "y": [0.0, 1.0]}'
    r = httpx.post(f"{server}/analyze", content=raw, headers={"content-type": "application/json"}, timeout=30)
    assert 400 <= r.status_code < 500, r.text
    big = b'{"x": [' + b"[0.0, 0.0], " * 500_000 + b"[0.0, 0.0]]}"
    r = httpx.post(f"{server}/predict", content=big, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413 and "limit" in r.text
