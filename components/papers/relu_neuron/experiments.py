"""The grid of gradient flows: every setting x initialisation scale x seed, plus the two references
(small-step gradient descent, the linear neuron). Which theorem each column checks: README.md."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.papers.relu_neuron.analysis import measure, nearest_interpolant
from components.papers.relu_neuron.config import ReluNeuronConfig, Setting
from components.papers.relu_neuron.data import init_weights, make_dataset
from components.papers.relu_neuron.flow import Flow, gradient_descent, gradient_flow, single_threaded_blas


def _seed(cfg: ReluNeuronConfig, setting_idx: int, seed: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, setting_idx, seed])


def run_grid(
    cfg: ReluNeuronConfig, progress=None
) -> tuple[pd.DataFrame, dict[str, list[tuple[np.ndarray, np.ndarray, Flow]]]]:
    """One row per (setting, scale, seed) with the measures of ``analysis.measure``.

    The dataset depends on (setting, seed) only, so every scale of a seed starts on the same data
    from the same direction: the scale is the only thing that changes along a row of the grid.
    Returns the table and, for d = 2, a few trajectories per data kind to draw.
    """
    ex = cfg.experiments
    jobs = [
        (si, s, scale, seed) for si, s in enumerate(ex.settings) for seed in range(ex.seeds) for scale in ex.init_scales
    ]
    it = jobs if progress is None else progress(jobs, total=len(jobs), desc="gradient flows")
    with single_threaded_blas():
        return _run_jobs(cfg, it)


def _run_jobs(cfg: ReluNeuronConfig, jobs) -> tuple[pd.DataFrame, dict[str, list[tuple[np.ndarray, np.ndarray, Flow]]]]:
    ex = cfg.experiments
    rows: list[dict] = []
    keep: dict[str, list[tuple[np.ndarray, np.ndarray, Flow]]] = {}
    for si, s, scale, seed in jobs:
        rng = _seed(cfg, si, seed)
        x, y, v = make_dataset(s.data, s.n, s.d, rng, ex.noise_std)
        w0 = init_weights(s.d, scale, rng)
        flow = gradient_flow(x, y, w0, t_max=ex.t_max, grad_tol=ex.grad_tol)
        row = {"data": s.data, "d": s.d, "n": s.n, "scale": scale, "seed": seed}
        row.update(
            measure(flow, x, y, v if s.data in ("teacher", "positive") else None)
        )  # realizable: global min = 0 loss
        rows.append(row)
        if s.d == 2 and seed < ex.plot_runs:
            keep.setdefault(f"{s.data}_scale{scale:g}", []).append((x, y, flow))
    return pd.DataFrame(rows), keep


def gd_agreement(cfg: ReluNeuronConfig) -> pd.DataFrame:
    """Flow vs small-step gradient descent at time ``gd_horizon`` on the first settings' data."""
    ex = cfg.experiments
    rows = []
    with single_threaded_blas():
        for k in range(ex.gd_checks):
            rows.append(_gd_check(cfg, k))
    return pd.DataFrame(rows)


def _gd_check(cfg: ReluNeuronConfig, k: int) -> dict:
    """One comparison: the flow up to ``gd_horizon`` against gradient descent at two steps."""
    ex = cfg.experiments
    si = k % len(ex.settings)
    s: Setting = ex.settings[si]
    rng = _seed(cfg, si, 10_000 + k)
    x, y, _ = make_dataset(s.data, s.n, s.d, rng, ex.noise_std)
    w0 = init_weights(s.d, ex.init_scales[k % len(ex.init_scales)], rng)
    while not np.any(x @ w0 > 0):  # a dead start never moves: it would check nothing
        w0 = init_weights(s.d, ex.init_scales[k % len(ex.init_scales)], rng)
    flow = gradient_flow(x, y, w0, t_max=ex.gd_horizon, grad_tol=1e-14)
    w_flow = flow.w_final  # the flow at t = gd_horizon (or where it stopped, converged)
    ref = max(float(np.linalg.norm(w_flow)), 1e-300)
    gaps = {
        f"relative_gap_lr{lr:g}": float(np.linalg.norm(gradient_descent(x, y, w0, float(flow.t[-1]), lr) - w_flow))
        / ref
        for lr in (10 * ex.gd_lr, ex.gd_lr)
    }  # the gap shrinks with the step: first-order agreement
    return {
        "data": s.data,
        "d": s.d,
        "t": float(flow.t[-1]),
        "events": len(flow.event_times),
        "sliding": flow.sliding,
        **gaps,
        "relative_gap": gaps[f"relative_gap_lr{ex.gd_lr:g}"],
    }


def linear_contrast(cfg: ReluNeuronConfig) -> pd.DataFrame:
    """The linear neuron's flow from small and large w0 against w0 + X^+ (y - X w0) and X^+ y."""
    with single_threaded_blas():
        return _linear_rows(cfg)


def _linear_rows(cfg: ReluNeuronConfig) -> pd.DataFrame:
    ex = cfg.experiments
    rows = []
    for si, s in enumerate(ex.settings):
        for seed in range(min(ex.seeds, 10)):
            rng = _seed(cfg, si, 20_000 + seed)
            x, y, _ = make_dataset(s.data, s.n, s.d, rng, ex.noise_std)
            for scale in (min(ex.init_scales), max(ex.init_scales)):
                w0 = init_weights(s.d, scale, rng)
                flow = gradient_flow(x, y, w0, t_max=ex.t_max, grad_tol=ex.grad_tol, linear=True)
                nearest = nearest_interpolant(w0, x, y)
                min_norm = np.linalg.pinv(x) @ y
                scale_ref = max(float(np.linalg.norm(nearest)), 1e-300)
                rows.append(
                    {
                        "data": s.data,
                        "d": s.d,
                        "n": s.n,
                        "scale": scale,
                        "seed": seed,
                        "error_to_nearest": float(np.linalg.norm(flow.w_final - nearest)) / scale_ref,
                        "error_to_min_norm": float(np.linalg.norm(flow.w_final - min_norm)) / scale_ref,
                    }
                )
    return pd.DataFrame(rows)
