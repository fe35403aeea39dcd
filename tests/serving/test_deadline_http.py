"""Work is bounded in time: a request past its budget stops computing, answers 504, and the server
stays responsive. The relu_neuron and ccdf test servers run with a budget of a few seconds
(tests/serving/conftest.py); the worst case measured against the production budgets is in
benchmarks/serving_bounds.py."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import psutil
import pytest
from PIL import Image

from tests.serving.conftest import TEST_BUDGET_S

pytestmark = pytest.mark.e2e


def _worker_cpu(pid: int, seconds: float = 2.0) -> float:
    """CPU seconds per second used by the server's processes over ``seconds``."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    before = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
    time.sleep(seconds)
    return (sum(p.cpu_times().user + p.cpu_times().system for p in procs) - before) / seconds


def test_analyze_past_its_budget_stops_and_the_server_answers(served) -> None:
    # A server of its own with a budget far below the request's work: 200 x 200 at the value bound
    # takes ~2 s of flow on an idle 2-core machine (benchmarks/serving_bounds.py), minutes under load.
    budget = 0.25
    url = served("relu_neuron", budget_s=str(budget))
    rng = np.random.default_rng(0)
    X = 5.0 * rng.choice([-1.0, 1.0], (200, 200))
    y = 5.0 * rng.choice([-1.0, 1.0], 200)
    start = time.monotonic()
    r = httpx.post(f"{url}/analyze", json={"X": X.tolist(), "y": y.tolist(), "init_scale": 100, "seed": 0}, timeout=120)
    took = time.monotonic() - start
    assert r.status_code == 504, (r.status_code, r.text[:300])
    assert "time budget" in r.json()["error"] and took < budget + 10, (took, r.text)
    assert _worker_cpu(url.pid) < 0.5, "the flow stopped computing"
    start = time.monotonic()
    ok = httpx.post(f"{url}/predict", json={"x": [[1.0, 0.5]]}, timeout=30)
    assert ok.status_code == 200 and time.monotonic() - start < 5, ok.text


def test_ccdf_past_its_budget_stops(served) -> None:
    url = served("ccdf")
    budget = float(TEST_BUDGET_S["ccdf"])
    buf = io.BytesIO()  # 64x64 RGB at x4: 256x256x3 pixels; simple init at N' = 10 (the work bound)
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(buf, format="PNG")
    start = time.monotonic()
    r = httpx.post(
        f"{url}/super_resolve",
        files={"image": ("x.png", buf.getvalue(), "image/png")},
        data={"scale": "4", "init": "simple", "steps": "10", "t0": "1"},
        timeout=120,
    )
    took = time.monotonic() - start
    if r.status_code == 200:  # a fast machine: the smoke model finished inside the budget
        assert took < budget + 10
        pytest.skip(f"the request finished in {took:.1f} s, inside the {budget} s test budget")
    assert r.status_code == 504 and "CCDF stopped after" in r.json()["error"], r.text
    assert took < budget + 10 and _worker_cpu(url.pid) < 0.5
