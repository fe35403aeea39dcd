"""The gradient flow stops on its caller's ``should_stop`` (the HTTP service's time budget)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from components.papers.relu_neuron.predict import analyze


def test_analyze_stops_inside_a_long_piece() -> None:
    rng = np.random.default_rng(0)
    x, y = 1e3 * rng.standard_normal((60, 60)), 1e3 * rng.standard_normal(60)  # minutes of stiff flow
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="gradient flow stopped"):
        analyze(x, y, 100.0, 0, should_stop=lambda: time.monotonic() > start + 0.3)
    assert time.monotonic() - start < 2.0


def test_should_stop_never_true_changes_nothing() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 2))
    y = np.maximum(x @ np.array([0.6, -0.8]), 0)
    assert analyze(x, y, 1e-3, 3) == analyze(x, y, 1e-3, 3, should_stop=lambda: False)
