"""The data inside the assumptions (positive inputs and labels), the gate's counting, and the claims
there against their known answers: the norm never decreases, no sample reactivates, and in d >> n the
limit is exactly the interpolant nearest w(0), w0 + X^+ (y - X w0)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.papers.relu_neuron import PAPER
from components.papers.relu_neuron.analysis import measure, nearest_interpolant
from components.papers.relu_neuron.data import init_weights, make_dataset
from components.papers.relu_neuron.evaluate import (
    claims_inside,
    clopper_pearson_lower,
    proportion_contrast,
    summarize,
)
from components.papers.relu_neuron.flow import gradient_flow, single_threaded_blas


def test_positive_data_meets_the_assumptions() -> None:
    x, y, v = make_dataset("positive", 30, 5, np.random.default_rng(0))
    assert np.all(x >= 0) and np.all(v >= 0) and np.all(y > 0)
    assert np.all(x @ x.T > 0), "every pair of inputs is positively correlated"
    assert np.allclose(y, np.maximum(x @ v, 0)), "realizable by the neuron"


@pytest.mark.parametrize("d", [2, 100])
def test_small_init_claims_hold_in_every_run_inside_the_assumptions(d: int) -> None:
    live = 0
    with single_threaded_blas():
        for seed in range(6):
            rng = np.random.default_rng([7, d, seed])
            x, y, v = make_dataset("positive", 20, d, rng)
            w0 = init_weights(d, 1e-3, rng)
            if not np.any(x @ w0 > 0):
                continue  # a dead start is a stationary point: no claim is about it
            live += 1
            flow = gradient_flow(x, y, w0)
            m = measure(flow, x, y, v)
            assert m["norm_monotone"] == 1.0 and m["reactivations"] == 0 and m["global_min"] == 1.0
            # every sample ends active, so the support-vector limit is the nearest interpolant of all
            assert np.allclose(flow.w_final, nearest_interpolant(w0, x, y), atol=1e-6)
    assert live >= 3


def test_outside_the_assumptions_the_gaussian_teacher_breaks_the_d100_characterization() -> None:
    """The counter-case the README reports: in d >> n a Gaussian teacher deactivates samples on the way
    and w(inf) is not the support vectors' nearest interpolant in some run."""
    errors = []
    with single_threaded_blas():
        for seed in range(4):
            rng = np.random.default_rng([8, seed])
            x, y, v = make_dataset("teacher", 20, 100, rng)
            errors.append(measure(gradient_flow(x, y, init_weights(100, 1e-3, rng)), x, y, v)["characterization_error"])
    assert max(errors) > 1e-3


def test_clopper_pearson_and_contrast_known_answers() -> None:
    assert clopper_pearson_lower(20, 20) == pytest.approx(0.05 ** (1 / 20))  # (1 - level)^(1/n) when k = n
    assert clopper_pearson_lower(0, 10) == 0.0
    diff, se = proportion_contrast(pd.Series([1.0] * 10), pd.Series([1.0] * 5 + [0.0] * 5))
    assert diff == pytest.approx(0.5) and se == pytest.approx(np.sqrt(0.25 / 10))


def test_dead_inits_are_counted_and_left_out() -> None:
    base = {
        "data": "positive",
        "d": 2,
        "n": 3,
        "scale": 1e-3,
        "converged": 1.0,
        "norm_monotone": 1.0,
        "norm_ratio": 10.0,
        "global_min": 1.0,
        "reactivations": 0.0,
        "span_residual_ever_active": 0.0,
        "span_residual_support": 0.0,
        "characterization_error": 0.0,
        "support_is_ever_active": 1.0,
        "events": 1.0,
    }
    runs = pd.DataFrame(
        [{**base, "dead_init": 0.0}, {**base, "dead_init": 1.0, "norm_monotone": 0.0, "global_min": 0.0}]
    )
    s = summarize(runs).iloc[0]
    assert s["runs"] == 1 and s["dead_inits"] == 1 and s["norm_monotone"] == 1.0
    out, _ = claims_inside(runs, 1e-2)
    assert out["inside_small_runs"] == 1 and out["inside_small_all"] == 1.0


def test_gate_needs_every_inside_run() -> None:
    ok = {
        "gd_max_relative_gap": 0.001,
        "inside_small_runs": 300,
        "inside_small_all": 1.0,
        "d2_teacher_global_min_min": 1.0,
        "d2_characterized_fraction": 1.0,
        "linear_max_error_to_nearest": 1e-9,
    }
    assert PAPER.gate(ok).passed
    bad = PAPER.gate({**ok, "inside_small_all": 299 / 300})
    assert not bad.passed and "inside the assumptions" in bad.reasons[0]
