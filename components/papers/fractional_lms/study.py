"""The Monte-Carlo study of one setting (input kind x SNR): the three claims of the issue.

(a) breakdown: the published FLMS (w^(1-f)) on a plant with negative taps, in real arithmetic
    (NaN weights) and in complex arithmetic (complex weights for a real plant);
(b) step-size view: the remedied FLMS's steady state equals that of LMS with the frozen per-tap
    step mu + mu_f |w_o|^(1-f) / Gamma(2-f) (``algorithms.effective_step`` at w = w_o);
(c) matched steady state: for every fractional algorithm and order, the conventional algorithm
    (LMS; NLMS for FNLMS) with its step tuned to the same steady-state MSD, and the iterations each
    needs to come within 1 dB of its steady state.

(d) the Wiener floor: the optimal filter from the true R and p, its MMSE J_min, and the steady-state
    excess MSE of LMS (and of the remedied FLMS through its frozen step) against the small-step
    theory mu tr(R) J_min / 2 (wiener.py).

Every algorithm in a setting sees the same input and noise realisations (common random numbers), so
each comparison is paired run by run, with the standard error of the per-run differences (paired.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.papers.fractional_lms.algorithms import (
    AdaptResult,
    adapt,
    effective_step,
    per_tap_lms,
    regressors,
    rule,
)
from components.papers.fractional_lms.config import FractionalLMSConfig
from components.papers.fractional_lms.data import (
    draw_signals,
    input_covariance,
    noise_variance,
)
from components.papers.fractional_lms.measures import (  # noqa: F401 (re-exported)
    converged,
    iterations_to_within,
    match_step,
    steady_state_db,
    to_db,
)
from components.papers.fractional_lms.paired import (
    bootstrap_speed_ratio,
    mean_se,
    paired_db_gap,
    tail_mean,
)
from components.papers.fractional_lms.wiener import small_step_excess_mse, wiener

FRACTIONAL = ("flms", "flms_signed", "fnlms", "mflms")
BASELINE = {"flms": "lms", "flms_signed": "lms", "fnlms": "nlms", "mflms": "lms"}


@dataclass
class SettingResult:
    """Rows of the results table and the curves worth plotting for one setting."""

    rows: list[dict] = field(default_factory=list)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    breakdown: dict[str, float] = field(default_factory=dict)
    wiener_rows: list[dict] = field(default_factory=list)


def _kept(values: np.ndarray | None) -> np.ndarray:
    """An array of ``adapt``'s result that is None only without the plant (msd) or without
    ``keep_runs`` (msd_runs; emse_runs also without ``weight_matrix``); every call here passes them."""
    assert values is not None
    return values


def run_setting(cfg: FractionalLMSConfig, kind: str, snr_db: float, seed: int, progress=None) -> SettingResult:
    """Run the whole study of one setting. See the module docstring."""
    s, st = cfg.steps, cfg.study
    plant = np.asarray(cfg.data.plant)
    m = len(plant)
    orders = np.asarray(st.orders)
    x, d = draw_signals(plant, st.runs, st.iterations, kind, cfg.data.ar_coeff, snr_db, np.random.default_rng(seed))
    xr = regressors(x, m)
    res = SettingResult()
    name = f"{kind}_snr{snr_db:g}"

    # (a) the published form breaks on the negative taps
    real = adapt(xr, d, rule("flms_published", s.mu, s.mu_f, orders), plant)
    cplx = adapt(xr, d, rule("flms_published", s.mu, s.mu_f, orders, complex_weights=True), plant)
    for i, f in enumerate(orders):
        broken = real.first_nonfinite[i] >= 0
        res.breakdown[f"{name}/published_f{f:g}/broken_runs"] = float(broken.mean())
        if broken.any():
            res.breakdown[f"{name}/published_f{f:g}/first_nan_iteration"] = float(
                np.median(real.first_nonfinite[i][broken])
            )
        res.breakdown[f"{name}/published_f{f:g}/complex_imag_norm"] = float(cplx.imag_norm[i])

    # the fractional algorithms, every order side by side
    r_mat = input_covariance(m, kind, cfg.data.ar_coeff)
    sigma_v2 = noise_variance(plant, kind, cfg.data.ar_coeff, snr_db)
    w_opt, j_min = wiener(r_mat, r_mat @ plant, float(plant @ r_mat @ plant) + sigma_v2)
    frac: dict[str, AdaptResult] = {}
    for algo in FRACTIONAL:
        mu, mu_f = (s.nlms_mu, s.nlms_mu_f) if algo == "fnlms" else (s.mu, s.mu_f)
        frac[algo] = adapt(
            xr,
            d,
            rule(algo, mu, mu_f, orders, s.momentum, s.eps),
            plant,
            keep_runs=True,
            weight_matrix=r_mat if algo == "flms" else None,
        )

    # (d) LMS at the common step against the Wiener floor and the small-step theory
    lms = adapt(xr, d, rule("lms", s.mu), plant, keep_runs=True, weight_matrix=r_mat)
    emse, emse_se = mean_se(tail_mean(_kept(lms.emse_runs)[0], st.steady_fraction))
    emse_theory = small_step_excess_mse(s.mu, r_mat, j_min)
    mse_ss = float(np.mean(lms.mse[0, -max(1, int(round(st.iterations * st.steady_fraction))) :]))
    res.wiener_rows.append(
        {
            "setting": name,
            "algorithm": "lms",
            "order": 1.0,
            "j_min": j_min,
            "wiener_plant_error": float(np.linalg.norm(w_opt - plant)),
            "steady_mse_over_jmin": mse_ss / j_min,
            "emse_over_jmin": emse / j_min,
            "emse_se_over_jmin": emse_se / j_min,
            "theory_emse_over_jmin": emse_theory / j_min,
        }
    )

    # the conventional algorithms over a grid of steps, to match steady states
    grids = {
        "lms": np.geomspace(s.mu / 4, s.mu * 16, st.match_grid),
        "nlms": np.geomspace(s.nlms_mu / 4, min(1.5, s.nlms_mu * 16), st.match_grid),
    }
    grid_runs = {b: adapt(xr, d, rule(b, g, eps=s.eps), plant) for b, g in grids.items()}
    grid_ss = {b: steady_state_db(_kept(r.msd), st.steady_fraction) for b, r in grid_runs.items()}
    grid_ok = {b: converged(_kept(r.msd), st.steady_fraction) for b, r in grid_runs.items()}

    # (b) remedied FLMS vs LMS with its frozen per-tap step at the plant
    frozen_steps = effective_step(rule("flms", s.mu, s.mu_f, orders), np.tile(plant, (len(orders), 1)))  # (K, M)
    frozen = adapt(xr, d, per_tap_lms(frozen_steps), plant, keep_runs=True)
    frozen_ss = steady_state_db(_kept(frozen.msd), st.steady_fraction)
    flms_emse = tail_mean(_kept(frac["flms"].emse_runs), st.steady_fraction)  # (K, R)
    flms_mse_tail = frac["flms"].mse[:, -max(1, int(round(st.iterations * st.steady_fraction))) :].mean(axis=1)
    for i, f in enumerate(orders):
        e_mean, e_se = mean_se(flms_emse[i])
        res.wiener_rows.append(
            {
                "setting": name,
                "algorithm": "flms",
                "order": float(f),
                "j_min": j_min,
                "wiener_plant_error": float(np.linalg.norm(w_opt - plant)),
                "steady_mse_over_jmin": float(flms_mse_tail[i]) / j_min,
                "emse_over_jmin": e_mean / j_min,
                "emse_se_over_jmin": e_se / j_min,
                "theory_emse_over_jmin": small_step_excess_mse(frozen_steps[i], r_mat, j_min) / j_min,
            }
        )

    # (c) matched steady state
    matched: list[tuple[Any, ...]] = []
    for algo in FRACTIONAL:
        ss = steady_state_db(_kept(frac[algo].msd), st.steady_fraction)
        base = BASELINE[algo]
        for i, f in enumerate(orders):
            matched.append(
                (algo, i, f, base, match_step(grids[base], grid_ss[base], grid_ok[base], float(ss[i])), float(ss[i]))
            )
    for base in ("lms", "nlms"):
        todo = [j for j, mt in enumerate(matched) if mt[3] == base and math.isfinite(mt[4])]
        if not todo:
            continue
        run = adapt(xr, d, rule(base, np.array([matched[j][4] for j in todo]), eps=s.eps), plant, keep_runs=True)
        base_ss = steady_state_db(_kept(run.msd), st.steady_fraction)
        base_n = iterations_to_within(_kept(run.msd), base_ss)
        for slot, j in enumerate(todo):
            matched[j] = (
                *matched[j],
                float(base_ss[slot]),
                int(base_n[slot]),
                _kept(run.msd)[slot],
                _kept(run.msd_runs)[slot],
            )

    boot_rng = np.random.default_rng(seed + 1)
    for algo in FRACTIONAL:
        curves = _kept(frac[algo].msd)
        ss = steady_state_db(curves, st.steady_fraction)
        n_frac = iterations_to_within(curves, ss)
        ok = converged(curves, st.steady_fraction)
        for i, f in enumerate(orders):
            mt = next(t for t in matched if t[0] == algo and t[1] == i)
            row = {
                "setting": name,
                "input": kind,
                "snr_db": snr_db,
                "algorithm": algo,
                "order": float(f),
                "steady_msd_db": float(ss[i]),
                "converged": bool(ok[i]),
                "iters_to_1db": int(n_frac[i]),
                "baseline": mt[3],
                "baseline_step": mt[4],
            }
            if len(mt) > 6:
                # paired over runs: the baseline's steady state above the fractional one's (dB), and the
                # bootstrap bound of the speed ratio on the same resampled runs
                gap, gap_se = paired_db_gap(mt[9], _kept(frac[algo].msd_runs)[i], st.steady_fraction)
                ratio_se, ratio_hi = bootstrap_speed_ratio(
                    _kept(frac[algo].msd_runs)[i], mt[9], st.steady_fraction, st.bootstrap, boot_rng
                )
                row.update(
                    baseline_steady_msd_db=mt[6],
                    baseline_iters_to_1db=mt[7],
                    matched_gap_db=gap,
                    matched_gap_se=gap_se,
                    matched=abs(gap) + 2 * gap_se <= st.match_tolerance_db,
                    speed_ratio=mt[7] / max(1, int(n_frac[i])),
                    speed_ratio_se=ratio_se,
                    speed_ratio_upper95=ratio_hi,
                )
                res.curves[f"{name}/{algo}_f{f:g}/{mt[3]}_matched"] = mt[8]
            else:
                row.update(
                    baseline_steady_msd_db=math.nan, baseline_iters_to_1db=-1, matched=False, speed_ratio=math.nan
                )
            if algo == "flms":
                row["frozen_step_lms_msd_db"] = float(frozen_ss[i])
                row["frozen_gap_db"], row["frozen_gap_se"] = paired_db_gap(
                    _kept(frac[algo].msd_runs)[i], _kept(frozen.msd_runs)[i], st.steady_fraction
                )
            res.rows.append(row)
            res.curves[f"{name}/{algo}_f{f:g}"] = curves[i]
    res.curves[f"{name}/published_real_f{orders[0]:g}"] = _kept(real.msd)[0]
    return res
