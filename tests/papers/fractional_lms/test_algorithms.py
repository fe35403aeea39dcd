"""Properties of the update rules, the engine, the study measures and fractional steepest descent."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import gamma

from components.papers.fractional_lms.algorithms import adapt, effective_step, per_tap_lms, regressors, rule
from components.papers.fractional_lms.data import draw_signals, noise_variance, plant_output
from components.papers.fractional_lms.steepest import caputo_fixed_point, caputo_gradient, descend
from components.papers.fractional_lms.study import iterations_to_within, match_step, steady_state_db

PLANT = np.array([0.8, -0.6, 0.4, -0.3, 0.2, -0.1])


def signals(runs=8, n=2000, kind="white", snr=20.0, seed=0):
    x, d = draw_signals(PLANT, runs, n, kind, 0.5, snr, np.random.default_rng(seed))
    return regressors(x, len(PLANT)), d


def test_regressors_and_plant_output_agree() -> None:
    x = np.random.default_rng(0).standard_normal((2, 50))
    xr = regressors(x, 4)
    assert xr.shape == (2, 50, 4)
    assert np.allclose(xr[:, 10], x[:, [10, 9, 8, 7]]) and np.allclose(xr[:, 1, 2:], 0)
    w = np.array([0.5, -1.0, 0.25])
    assert np.allclose(plant_output(w, x), regressors(x, 3) @ w)


def test_snr_sets_the_noise_variance() -> None:
    x, d = draw_signals(PLANT, 4, 20000, "ar1", 0.5, 10.0, np.random.default_rng(1))
    v = d - plant_output(PLANT, x)
    snr = 10 * np.log10(np.var(plant_output(PLANT, x)) / np.var(v))
    assert abs(snr - 10.0) < 0.3
    assert noise_variance(PLANT, "white", 0.0, 20.0) == pytest.approx(np.sum(PLANT**2) / 100)


def test_lms_identifies_the_plant() -> None:
    xr, d = signals(n=4000)
    out = adapt(xr, d, rule("lms", 0.01), PLANT)
    assert out.msd[0, -1] < 1e-2 * out.msd[0, 0]
    assert np.allclose(out.weights[0].mean(0), PLANT, atol=0.02)


def test_published_form_breaks_on_negative_taps_and_even_on_positive_ones() -> None:
    xr, d = signals(n=200)
    out = adapt(xr, d, rule("flms_published", 0.01, 0.01, [0.25, 0.5, 0.75]), PLANT)
    assert np.all(out.first_nonfinite >= 0), "every run hits NaN once a weight is negative"
    cplx = adapt(xr, d, rule("flms_published", 0.01, 0.01, 0.5, complex_weights=True), PLANT)
    assert np.iscomplexobj(cplx.weights) and cplx.imag_norm[0] > 0
    positive = np.abs(PLANT)
    x, dp = draw_signals(positive, 8, 200, "white", 0.0, 40.0, np.random.default_rng(0))
    pos = adapt(regressors(x, 6), dp, rule("flms_published", 0.01, 0.01, 0.5), positive)
    # from w(0) = 0 the first step is mu e(0) x(0), whose sign is random: some weights dip below zero
    # on the way to a positive optimum, and the published form breaks there too
    assert 0 < np.mean(pos.first_nonfinite >= 0)
    lms = adapt(regressors(x, 6), dp, rule("lms", 0.01), positive)
    assert np.all(lms.first_nonfinite < 0)


def test_remedied_flms_is_lms_with_a_weight_dependent_step() -> None:
    """One FLMS step equals one LMS step with per-tap step mu + mu_f |w|^(1-f) / Gamma(2-f)."""
    rng = np.random.default_rng(3)
    xr, d = signals(runs=3, n=1)
    w0 = rng.standard_normal(6)
    r = rule("flms", 0.01, 0.02, 0.5)
    flms = adapt(xr, d, r, w0=w0)
    mu_taps = effective_step(r, w0[None])  # (1, M)
    lms = adapt(xr, d, per_tap_lms(mu_taps), w0=w0)
    assert np.allclose(flms.weights, lms.weights, atol=1e-14)
    assert mu_taps[0, 0] == pytest.approx(0.01 + 0.02 * abs(w0[0]) ** 0.5 / gamma(1.5))


def test_order_one_and_zero_fractional_step_reduce_to_lms() -> None:
    xr, d = signals(n=300)
    lms = adapt(xr, d, rule("lms", 0.01), PLANT)
    assert np.allclose(adapt(xr, d, rule("flms", 0.01, 0.0, 0.5), PLANT).weights, lms.weights)
    # f = 1: |w|^0 / Gamma(1) = 1, so FLMS is LMS with step mu + mu_f
    assert np.allclose(adapt(xr, d, rule("flms", 0.004, 0.006, 1.0), PLANT).weights, lms.weights)


def test_configurations_are_independent_in_a_batch() -> None:
    xr, d = signals(n=300)
    both = adapt(xr, d, rule("fnlms", [0.05, 0.2], 0.05, [0.25, 0.75]), PLANT)
    one = adapt(xr, d, rule("fnlms", 0.2, 0.05, 0.75), PLANT)
    assert np.allclose(both.weights[1], one.weights[0]) and np.allclose(both.msd[1], one.msd[0])


def test_momentum_resumes_exactly() -> None:
    xr, d = signals(runs=2, n=400)
    r = rule("mflms", 0.01, 0.01, 0.5, alpha=0.5)
    full = adapt(xr, d, r, PLANT)
    first = adapt(xr[:, :150], d[:, :150], r, PLANT)
    second = adapt(xr[:, 150:], d[:, 150:], r, PLANT, w0=first.weights[0], w_prev0=first.prev_weights[0])
    assert np.allclose(second.weights, full.weights, atol=1e-12)


def test_unknown_algorithm_and_bad_order() -> None:
    with pytest.raises(ValueError, match="unknown algorithm"):
        rule("rls", 0.1)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        rule("flms", 0.1, 0.1, 1.5)


def test_steady_state_matching_recovers_an_lms_step() -> None:
    xr, d = signals(runs=32, n=3000, seed=5)
    grid = np.geomspace(0.004, 0.05, 10)
    runs = adapt(xr, d, rule("lms", grid), PLANT)
    ss = steady_state_db(runs.msd, 0.2)
    target = adapt(xr, d, rule("lms", 0.015), PLANT)
    mu = match_step(grid, ss, np.ones_like(grid, bool), float(steady_state_db(target.msd, 0.2)[0]))
    assert mu == pytest.approx(0.015, rel=0.15)
    assert math.isnan(match_step(grid, ss, np.ones_like(grid, bool), 10.0))
    n = iterations_to_within(runs.msd, ss)
    assert np.all(np.diff(n[:6]) <= 5), "larger steps converge sooner"


def test_caputo_descent_stops_at_two_minus_f_times_optimum() -> None:
    w_star, a, f = np.array([1.0, 0.5]), np.array([1.0, 2.0]), np.array([0.3, 0.6, 1.0])
    traj = descend("caputo", np.full(2, 0.4), w_star, a, f, 0.1, 4000)
    assert np.allclose(traj[:, -1], caputo_fixed_point(w_star, f[:, None]), atol=1e-6)
    assert np.allclose(caputo_gradient(caputo_fixed_point(w_star, f[:, None]), w_star, a, f[:, None]), 0, atol=1e-12)
    assert np.allclose(traj[-1, -1], w_star, atol=1e-6), "f = 1 is gradient descent"
    stuck = descend("chain_rule", np.zeros(2), w_star, a, f[:2], 0.1, 100)
    assert np.all(stuck == 0), "the chain-rule form never leaves a zero initialisation"


def test_wiener_and_least_squares_known_answers() -> None:
    from components.papers.fractional_lms.data import input_covariance
    from components.papers.fractional_lms.wiener import least_squares, wiener

    r = input_covariance(6, "ar1", 0.5)
    sigma_v2 = 0.01
    w, j_min = wiener(r, r @ PLANT, float(PLANT @ r @ PLANT) + sigma_v2)
    assert np.allclose(w, PLANT) and j_min == pytest.approx(sigma_v2)  # FIR plant of the filter's length
    x, d = draw_signals(PLANT, 1, 500, "ar1", 0.5, 200.0, np.random.default_rng(3))  # noise-free
    assert np.allclose(least_squares(x[0], d[0], 6), PLANT, atol=1e-8)


def test_small_step_excess_mse_theory() -> None:
    from components.papers.fractional_lms.data import input_covariance
    from components.papers.fractional_lms.wiener import small_step_excess_mse

    r = input_covariance(6, "ar1", 0.5)
    assert small_step_excess_mse(0.01, r, 2.0) == pytest.approx(0.01 * np.trace(r) * 2.0 / 2)  # mu tr(R) J_min / 2
    steps = np.array([0.01, 0.02, 0.005, 0.01, 0.03, 0.002])
    assert small_step_excess_mse(steps, np.eye(6), 1.0) == pytest.approx(steps.sum() / 2)  # white: sum mu_k / 2


def test_lms_misadjustment_matches_the_small_step_theory() -> None:
    """Monte Carlo: the measured excess MSE E eps^T R eps of LMS in steady state against
    mu tr(R) J_min / 2, within 3 SE plus the theory's first-order error (mu tr R = 0.06 here)."""
    from components.papers.fractional_lms.data import input_covariance, noise_variance
    from components.papers.fractional_lms.paired import mean_se, tail_mean
    from components.papers.fractional_lms.wiener import small_step_excess_mse

    for kind in ("white", "ar1"):
        xr, d = signals(runs=48, n=3000, kind=kind, snr=10.0, seed=11)
        r = input_covariance(6, kind, 0.5)
        j_min = noise_variance(PLANT, kind, 0.5, 10.0)
        out = adapt(xr, d, rule("lms", 0.01), PLANT, keep_runs=True, weight_matrix=r)
        emse, se = mean_se(tail_mean(out.emse_runs[0], 0.5))
        theory = small_step_excess_mse(0.01, r, j_min)
        assert abs(emse - theory) <= 3 * se + 0.1 * theory, (kind, emse, theory, se)
        assert np.allclose(out.msd_runs.mean(axis=1), out.msd, rtol=1e-5)


def test_paired_statistics_on_identical_and_shifted_curves() -> None:
    from components.papers.fractional_lms.paired import bootstrap_speed_ratio, paired_db_gap

    rng = np.random.default_rng(0)
    curves = np.exp(-np.arange(1000) / 100.0)[None, :] + 0.01 * (1 + rng.random((20, 1000)))
    gap, se = paired_db_gap(curves, curves, 0.2)
    assert gap == 0.0 and se == 0.0
    gap, se = paired_db_gap(2 * curves, curves, 0.2)
    assert gap == pytest.approx(10 * np.log10(2)) and se < 1e-12  # a paired constant offset has no noise
    se, upper = bootstrap_speed_ratio(curves, curves, 0.2, 50, rng)
    assert se == 0.0 and upper == 1.0
    n = np.arange(3000)
    fast = np.exp(-n / 100.0)[None, :] + 0.01 * (1 + 0.1 * rng.random((20, 3000)))
    slow = np.exp(-n / 200.0)[None, :] + 0.01 * (1 + 0.1 * rng.random((20, 3000)))
    se, upper = bootstrap_speed_ratio(fast, slow, 0.2, 50, rng)
    assert 1.9 < upper < 2.1 and se < 0.05, "twice the time constant: twice the iterations to the same floor"
