"""The Monte-Carlo study of one setting (input kind x SNR): the three claims of the issue.

(a) breakdown: the published FLMS (w^(1-f)) on a plant with negative taps, in real arithmetic
    (NaN weights) and in complex arithmetic (complex weights for a real plant);
(b) step-size view: the remedied FLMS's steady state equals that of LMS with the frozen per-tap
    step mu + mu_f |w_o|^(1-f) / Gamma(2-f) (``algorithms.effective_step`` at w = w_o);
(c) matched steady state: for every fractional algorithm and order, the conventional algorithm
    (LMS; NLMS for FNLMS) with its step tuned to the same steady-state MSD, and the iterations each
    needs to come within 1 dB of its steady state.

Every algorithm in a setting sees the same input and noise realisations (common random numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from components.papers.fractional_lms.algorithms import AdaptResult, adapt, effective_step, per_tap_lms, regressors, rule
from components.papers.fractional_lms.config import FractionalLMSConfig
from components.papers.fractional_lms.data import draw_signals

FRACTIONAL = ("flms", "flms_signed", "fnlms", "mflms")
BASELINE = {"flms": "lms", "flms_signed": "lms", "fnlms": "nlms", "mflms": "lms"}


def to_db(v: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(v)


def steady_state_db(msd: np.ndarray, fraction: float) -> np.ndarray:
    """(K, N) -> (K,) steady-state MSD in dB: the mean of the last ``fraction`` of the curve."""
    tail = max(1, int(round(msd.shape[-1] * fraction)))
    return to_db(np.mean(msd[..., -tail:], axis=-1))


def converged(msd: np.ndarray, fraction: float, tol_db: float = 0.5) -> np.ndarray:
    """(K,) whether the last two ``fraction``-long windows agree within ``tol_db`` (a plateau)."""
    tail = max(1, int(round(msd.shape[-1] * fraction)))
    last = to_db(np.mean(msd[..., -tail:], axis=-1))
    before = to_db(np.mean(msd[..., -2 * tail : -tail], axis=-1))
    return np.isfinite(last) & (np.abs(last - before) < tol_db)


def iterations_to_within(msd: np.ndarray, ss_db: np.ndarray, margin_db: float = 1.0) -> np.ndarray:
    """(K,) first iteration from which the (lightly smoothed) MSD stays within ``margin_db`` of steady state."""
    window = max(1, msd.shape[-1] // 200)
    kernel = np.ones(window) / window
    out = np.full(msd.shape[0], -1, dtype=np.int64)
    for k, curve in enumerate(msd):
        smooth = to_db(np.convolve(curve, kernel, mode="same"))
        above = np.nonzero(~(smooth <= ss_db[k] + margin_db))[0]  # NaN counts as above
        above = above[above < len(curve) - window]  # ignore the convolution's ragged end
        out[k] = 0 if len(above) == 0 else min(int(above[-1]) + 1, len(curve))
    return out


def match_step(grid: np.ndarray, ss_db: np.ndarray, ok: np.ndarray, target_db: float) -> float:
    """The step whose steady state is ``target_db``, by interpolating log(step) over the converged,
    monotone part of the grid (steady-state MSD grows with the step). NaN if out of range."""
    steps, levels = grid[ok], ss_db[ok]
    if len(steps) < 2 or not levels.min() <= target_db <= levels.max():
        return math.nan
    order = np.argsort(levels)
    return float(np.exp(np.interp(target_db, levels[order], np.log(steps[order]))))


@dataclass
class SettingResult:
    """Rows of the results table and the curves worth plotting for one setting."""

    rows: list[dict] = field(default_factory=list)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    breakdown: dict[str, float] = field(default_factory=dict)


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
            res.breakdown[f"{name}/published_f{f:g}/first_nan_iteration"] = float(np.median(real.first_nonfinite[i][broken]))
        res.breakdown[f"{name}/published_f{f:g}/complex_imag_norm"] = float(cplx.imag_norm[i])

    # the fractional algorithms, every order side by side
    frac: dict[str, AdaptResult] = {}
    for algo in FRACTIONAL:
        mu, mu_f = (s.nlms_mu, s.nlms_mu_f) if algo == "fnlms" else (s.mu, s.mu_f)
        frac[algo] = adapt(xr, d, rule(algo, mu, mu_f, orders, s.momentum, s.eps), plant, progress=None)

    # the conventional algorithms over a grid of steps, to match steady states
    grids = {"lms": np.geomspace(s.mu / 4, s.mu * 16, st.match_grid),
             "nlms": np.geomspace(s.nlms_mu / 4, min(1.5, s.nlms_mu * 16), st.match_grid)}
    grid_runs = {b: adapt(xr, d, rule(b, g, eps=s.eps), plant) for b, g in grids.items()}
    grid_ss = {b: steady_state_db(r.msd, st.steady_fraction) for b, r in grid_runs.items()}
    grid_ok = {b: converged(r.msd, st.steady_fraction) for b, r in grid_runs.items()}

    # (b) remedied FLMS vs LMS with its frozen per-tap step at the plant
    frozen = adapt(xr, d, per_tap_lms(effective_step(rule("flms", s.mu, s.mu_f, orders), np.tile(plant, (len(orders), 1)))), plant)
    frozen_ss = steady_state_db(frozen.msd, st.steady_fraction)

    # (c) matched steady state
    matched = []
    for algo in FRACTIONAL:
        ss = steady_state_db(frac[algo].msd, st.steady_fraction)
        base = BASELINE[algo]
        for i, f in enumerate(orders):
            matched.append((algo, i, f, base, match_step(grids[base], grid_ss[base], grid_ok[base], float(ss[i])), float(ss[i])))
    for base in ("lms", "nlms"):
        todo = [j for j, mt in enumerate(matched) if mt[3] == base and math.isfinite(mt[4])]
        if not todo:
            continue
        run = adapt(xr, d, rule(base, np.array([matched[j][4] for j in todo]), eps=s.eps), plant)
        base_ss = steady_state_db(run.msd, st.steady_fraction)
        base_n = iterations_to_within(run.msd, base_ss)
        for slot, j in enumerate(todo):
            matched[j] = (*matched[j], float(base_ss[slot]), int(base_n[slot]), run.msd[slot])

    for algo in FRACTIONAL:
        curves = frac[algo].msd
        ss = steady_state_db(curves, st.steady_fraction)
        n_frac = iterations_to_within(curves, ss)
        ok = converged(curves, st.steady_fraction)
        for i, f in enumerate(orders):
            mt = next(t for t in matched if t[0] == algo and t[1] == i)
            row = {
                "setting": name, "input": kind, "snr_db": snr_db, "algorithm": algo, "order": float(f),
                "steady_msd_db": float(ss[i]), "converged": bool(ok[i]), "iters_to_1db": int(n_frac[i]),
                "baseline": mt[3], "baseline_step": mt[4],
            }
            if len(mt) > 6:
                row.update(baseline_steady_msd_db=mt[6], baseline_iters_to_1db=mt[7],
                           matched=abs(mt[6] - ss[i]) <= st.match_tolerance_db,
                           speed_ratio=mt[7] / max(1, int(n_frac[i])))
                res.curves[f"{name}/{algo}_f{f:g}/{mt[3]}_matched"] = mt[8]
            else:
                row.update(baseline_steady_msd_db=math.nan, baseline_iters_to_1db=-1, matched=False, speed_ratio=math.nan)
            if algo == "flms":
                row["frozen_step_lms_msd_db"] = float(frozen_ss[i])
            res.rows.append(row)
            res.curves[f"{name}/{algo}_f{f:g}"] = curves[i]
    res.curves[f"{name}/published_real_f{orders[0]:g}"] = real.msd[0]
    return res
