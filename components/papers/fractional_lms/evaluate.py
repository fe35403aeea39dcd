"""The evaluate stage: the Monte-Carlo study over every setting, fractional steepest descent, the
registered model's identification error, the tables, figures and the gate.

Metrics (``metrics.json``): per setting / algorithm / order the steady-state MSD and the speed ratio
(iterations of the matched conventional algorithm / iterations of the fractional one to come within
1 dB of steady state; <= 1 means the conventional algorithm is at least as fast), the breakdown of
the published form, and the summaries the gate reads.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from components.contract import Gate, RunContext
from components.papers.fractional_lms import steepest
from components.papers.fractional_lms.config import FractionalLMSConfig
from components.papers.fractional_lms.data import input_covariance, load_train, noise_variance
from components.papers.fractional_lms.model import load
from components.papers.fractional_lms.report import write_reports
from components.papers.fractional_lms.study import run_setting
from components.papers.fractional_lms.wiener import least_squares

REMEDIED = ("flms", "fnlms", "mflms")  # the |w|^(1-f) remedy with LMS, NLMS and momentum
PAPER_CLAIM = (
    "The paper (Wahab, Khan, Naseem, Ye, IEEE TSP 2022) finds schematic kinks in fractional LMS and "
    "fractional steepest descent (the fractional power of a negative weight; a fractional gradient "
    "whose zero is not the optimum), proposes remedies, and concludes from experiments on system "
    "identification that the fractional learning algorithms have no advantage over conventional LMS. "
    "We did not have the paper's figures' numbers in a form we could copy, so the comparison is with "
    "its qualitative conclusions."
)


def fsd_study(cfg: FractionalLMSConfig) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Fractional steepest descent on J(w) = 1/2 sum a_k (w_k - w*_k)^2 (steepest.py)."""
    w_star, a = np.array([1.0, 0.5, 2.0]), np.array([1.0, 2.0, 0.5])
    orders = np.array(cfg.study.orders + (1.0,))
    n, step = cfg.study.fsd_iterations, cfg.study.fsd_step
    runs = {
        "caputo": steepest.descend("caputo", np.full(3, 0.3), w_star, a, orders, step, n),
        "chain_rule_zero_init": steepest.descend("chain_rule", np.zeros(3), w_star, a, orders, step, n),
        "chain_rule": steepest.descend("chain_rule", np.full(3, 0.3), w_star, a, orders, step, n),
    }
    rows = []
    for i, f in enumerate(orders):
        predicted = steepest.caputo_fixed_point(w_star, f)
        rows.append(
            {
                "order": float(f),
                "caputo_final": runs["caputo"][i, -1].round(4).tolist(),
                "caputo_predicted_(2-f)w*": predicted.round(4).tolist(),
                "caputo_error_to_w*": float(np.linalg.norm(runs["caputo"][i, -1] - w_star)),
                "caputo_error_to_prediction": float(np.linalg.norm(runs["caputo"][i, -1] - predicted)),
                "chain_rule_error_to_w*": float(np.linalg.norm(runs["chain_rule"][i, -1] - w_star)),
                "chain_rule_zero_init_moved": float(np.linalg.norm(runs["chain_rule_zero_init"][i, -1])),
            }
        )
    return pd.DataFrame(rows), {k: v[:, :, 0] for k, v in runs.items()}


def evaluate(cfg: FractionalLMSConfig, ctx: RunContext) -> dict[str, float]:
    """Run the whole study; write ``results.csv``, ``results.md`` and figures; return the metrics."""
    settings = [(kind, snr) for kind in cfg.study.inputs for snr in cfg.study.snr_db]
    rows, wiener_rows, curves, metrics = [], [], {}, {}
    for i, (kind, snr) in enumerate(ctx.progress(settings, total=len(settings), desc="Monte-Carlo settings")):
        res = run_setting(cfg, kind, snr, seed=cfg.seed * 1000 + 17 + i)
        rows += res.rows
        wiener_rows += res.wiener_rows
        curves.update(res.curves)
        metrics.update(res.breakdown)
        ctx.logger.log_metrics({k: v for k, v in res.breakdown.items() if math.isfinite(v)})
    df = pd.DataFrame(rows)
    wdf = pd.DataFrame(wiener_rows)
    wdf["z"] = (wdf["emse_over_jmin"] - wdf["theory_emse_over_jmin"]) / wdf["emse_se_over_jmin"]
    wdf["relative_error"] = wdf["emse_over_jmin"] / wdf["theory_emse_over_jmin"] - 1
    fsd, fsd_traj = fsd_study(cfg)

    for r in df.to_dict("records"):
        key = f"{r['setting']}/{r['algorithm']}_f{r['order']:g}"
        metrics[f"{key}/steady_msd_db"] = r["steady_msd_db"]
        if math.isfinite(r["speed_ratio"]):
            metrics[f"{key}/speed_ratio"] = r["speed_ratio"]
    rem = df[df["algorithm"].isin(REMEDIED)]
    metrics["remedied_matched_fraction"] = float(rem["matched"].mean())
    metrics["remedied_max_matched_gap_db_2se"] = (
        float((rem["matched_gap_db"].abs() + 2 * rem["matched_gap_se"]).max()) if "matched_gap_db" in rem else math.nan
    )
    metrics["remedied_max_speed_ratio"] = float(rem["speed_ratio"].max()) if rem["matched"].any() else math.nan
    metrics["remedied_mean_speed_ratio"] = float(rem["speed_ratio"].mean()) if rem["matched"].any() else math.nan
    metrics["remedied_max_speed_ratio_upper95"] = (
        float(rem["speed_ratio_upper95"].max()) if "speed_ratio_upper95" in rem else math.nan
    )
    if "speed_ratio_upper95" in rem:  # cases where LMS/NLMS is faster beyond noise (bound below 1)
        metrics["remedied_fraction_lms_faster_beyond_noise"] = float((rem["speed_ratio_upper95"] < 1.0).mean())
    flms = df[df["algorithm"] == "flms"]
    metrics["frozen_step_max_gap_db"] = float(flms["frozen_gap_db"].abs().max())
    metrics["frozen_step_max_gap_db_2se"] = float((flms["frozen_gap_db"].abs() + 2 * flms["frozen_gap_se"]).max())
    for r in wdf.to_dict("records"):
        key = f"{r['setting']}/{r['algorithm']}" + (f"_f{r['order']:g}" if r["algorithm"] != "lms" else "")
        metrics[f"{key}/emse_over_jmin"] = r["emse_over_jmin"]
        metrics[f"{key}/theory_emse_over_jmin"] = r["theory_emse_over_jmin"]
    # the small-step theory is first order in the step: allow its O(mu tr R) relative error beside 3 SE
    for algo in ("lms", "flms"):
        w = wdf[wdf["algorithm"] == algo]
        excess = (w["emse_over_jmin"] - w["theory_emse_over_jmin"]).abs() - 3 * w["emse_se_over_jmin"]
        metrics[f"{algo}_emse_max_excess_rel_theory"] = float((excess / w["theory_emse_over_jmin"]).max())
        metrics[f"{algo}_emse_max_abs_z"] = float(w["z"].abs().max())
        metrics[f"{algo}_emse_max_abs_relative_error"] = float(w["relative_error"].abs().max())
    metrics["step_trace_r_max"] = float(cfg.steps.mu * len(cfg.data.plant))  # mu tr(R): unit-variance input
    broken = [v for k, v in metrics.items() if k.endswith("/broken_runs")]
    metrics["published_min_broken_fraction"] = float(min(broken))
    real_fsd = fsd[fsd["order"] < 1]
    metrics["fsd_caputo_max_error_to_prediction"] = float(real_fsd["caputo_error_to_prediction"].max())
    metrics["fsd_caputo_min_error_to_optimum"] = float(real_fsd["caputo_error_to_w*"].min())
    metrics["fsd_chain_rule_zero_init_max_motion"] = float(real_fsd["chain_rule_zero_init_moved"].max())

    model = load(ctx.model_dir)
    x, d, plant = load_train(ctx.data_dir)
    metrics["model_final_mse_db"] = float(model.config["final_mse_db"])
    w_ls = least_squares(x, d, len(model.weights))  # the batch baseline on the same training signal
    if plant is not None and len(plant) == len(model.weights):
        metrics["model_msd_db"] = float(10 * np.log10(np.sum((model.weights - plant) ** 2) + 1e-300))
        metrics["least_squares_msd_db"] = float(10 * np.log10(np.sum((w_ls - plant) ** 2) + 1e-300))
        if cfg.data.source == "synthetic":  # E ||w_LS - w_o||^2 ~ sigma_v^2 tr(R^-1) / N (wiener.py)
            r_mat = input_covariance(len(plant), cfg.data.input, cfg.data.ar_coeff)
            sigma_v2 = noise_variance(plant, cfg.data.input, cfg.data.ar_coeff, cfg.data.snr_db)
            metrics["least_squares_theory_msd_db"] = float(
                10 * np.log10(sigma_v2 * np.trace(np.linalg.inv(r_mat)) / len(x))
            )
    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    write_reports(ctx, df, wdf, fsd, curves, fsd_traj, metrics, gate(metrics), PAPER_CLAIM)
    return metrics


def gate(metrics: dict[str, float]) -> Gate:
    """Champion iff the study reproduces the paper's findings beyond Monte-Carlo noise (every
    comparison paired over runs on common random numbers, paired.py):

    * the published form breaks on negative taps (in >= 99 % of runs of every setting and order);
    * the remedied FLMS is LMS with a weight-dependent step: its steady-state MSD equals that of LMS
      with the step frozen at the plant, |paired gap| + 2 SE <= 0.5 dB in every case;
    * at matched steady state (|paired gap| + 2 SE <= 0.5 dB in every remedied case) LMS/NLMS is at
      least as fast: the paired-bootstrap 95 % upper bound of the speed ratio <= 1.1 everywhere;
    * the Wiener anchor: the steady-state excess MSE of LMS over J_min agrees with the small-step
      theory mu tr(R) J_min / 2, and the remedied FLMS's with the same theory at its frozen per-tap
      step, to within 3 SE plus 10 % of the theory (its first-order error);
    * Caputo fractional steepest descent stops at (2 - f) w* (deterministic, to 1e-3)."""
    reasons = []

    def need(key: str, ok, text: str) -> None:
        value = metrics.get(key, math.nan)
        if not (math.isfinite(value) and ok(value)):
            reasons.append(f"{text} ({key} = {value:.3g})")

    need("published_min_broken_fraction", lambda v: v >= 0.99, "the published FLMS broke in < 99 % of runs")
    need(
        "frozen_step_max_gap_db_2se",
        lambda v: v <= 0.5,
        "FLMS vs frozen-step LMS steady states differ by > 0.5 dB (|gap| + 2 SE)",
    )
    need(
        "remedied_matched_fraction",
        lambda v: v >= 1.0,
        "a remedied case could not be matched in steady state within 0.5 dB (|gap| + 2 SE)",
    )
    need(
        "remedied_max_speed_ratio_upper95",
        lambda v: v <= 1.1,
        "LMS at matched steady state may be > 1.1x slower (95 % upper bound)",
    )
    need(
        "lms_emse_max_excess_rel_theory",
        lambda v: v <= 0.1,
        "LMS excess MSE departs from mu tr(R) J_min / 2 beyond 3 SE + 10 %",
    )
    need(
        "flms_emse_max_excess_rel_theory",
        lambda v: v <= 0.1,
        "FLMS excess MSE departs from its frozen-step theory beyond 3 SE + 10 %",
    )
    need(
        "fsd_caputo_max_error_to_prediction",
        lambda v: v < 1e-3,
        "Caputo fractional steepest descent did not stop at (2 - f) w*",
    )
    return Gate(passed=not reasons, reasons=tuple(reasons))
