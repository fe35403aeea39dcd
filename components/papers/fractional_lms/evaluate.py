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
from components.papers.fractional_lms.data import load_train
from components.papers.fractional_lms.model import load
from components.papers.fractional_lms.report import write_reports
from components.papers.fractional_lms.study import run_setting

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
        rows.append({
            "order": float(f),
            "caputo_final": runs["caputo"][i, -1].round(4).tolist(),
            "caputo_predicted_(2-f)w*": predicted.round(4).tolist(),
            "caputo_error_to_w*": float(np.linalg.norm(runs["caputo"][i, -1] - w_star)),
            "caputo_error_to_prediction": float(np.linalg.norm(runs["caputo"][i, -1] - predicted)),
            "chain_rule_error_to_w*": float(np.linalg.norm(runs["chain_rule"][i, -1] - w_star)),
            "chain_rule_zero_init_moved": float(np.linalg.norm(runs["chain_rule_zero_init"][i, -1])),
        })
    return pd.DataFrame(rows), {k: v[:, :, 0] for k, v in runs.items()}


def evaluate(cfg: FractionalLMSConfig, ctx: RunContext) -> dict[str, float]:
    """Run the whole study; write ``results.csv``, ``results.md`` and figures; return the metrics."""
    settings = [(kind, snr) for kind in cfg.study.inputs for snr in cfg.study.snr_db]
    rows, curves, metrics = [], {}, {}
    for i, (kind, snr) in enumerate(ctx.progress(settings, total=len(settings), desc="Monte-Carlo settings")):
        res = run_setting(cfg, kind, snr, seed=cfg.seed * 1000 + 17 + i)
        rows += res.rows
        curves.update(res.curves)
        metrics.update(res.breakdown)
        ctx.logger.log_metrics({k: v for k, v in res.breakdown.items() if math.isfinite(v)})
    df = pd.DataFrame(rows)
    fsd, fsd_traj = fsd_study(cfg)

    for r in df.to_dict("records"):
        key = f"{r['setting']}/{r['algorithm']}_f{r['order']:g}"
        metrics[f"{key}/steady_msd_db"] = r["steady_msd_db"]
        if math.isfinite(r["speed_ratio"]):
            metrics[f"{key}/speed_ratio"] = r["speed_ratio"]
    rem = df[df["algorithm"].isin(REMEDIED)]
    metrics["remedied_matched_fraction"] = float(rem["matched"].mean())
    metrics["remedied_max_speed_ratio"] = float(rem["speed_ratio"].max()) if rem["matched"].any() else math.nan
    metrics["remedied_mean_speed_ratio"] = float(rem["speed_ratio"].mean()) if rem["matched"].any() else math.nan
    flms = df[df["algorithm"] == "flms"]
    metrics["frozen_step_max_gap_db"] = float((flms["steady_msd_db"] - flms["frozen_step_lms_msd_db"]).abs().max())
    broken = [v for k, v in metrics.items() if k.endswith("/broken_runs")]
    metrics["published_min_broken_fraction"] = float(min(broken))
    real_fsd = fsd[fsd["order"] < 1]
    metrics["fsd_caputo_max_error_to_prediction"] = float(real_fsd["caputo_error_to_prediction"].max())
    metrics["fsd_caputo_min_error_to_optimum"] = float(real_fsd["caputo_error_to_w*"].min())
    metrics["fsd_chain_rule_zero_init_max_motion"] = float(real_fsd["chain_rule_zero_init_moved"].max())

    model = load(ctx.model_dir)
    x, d, plant = load_train(ctx.data_dir)
    metrics["model_final_mse_db"] = float(model.config["final_mse_db"])
    if plant is not None and len(plant) == len(model.weights):
        metrics["model_msd_db"] = float(10 * np.log10(np.sum((model.weights - plant) ** 2) + 1e-300))
    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    write_reports(ctx, df, fsd, curves, fsd_traj, metrics, gate(metrics), PAPER_CLAIM)
    return metrics


def gate(metrics: dict[str, float]) -> Gate:
    """Champion iff the study reproduces the paper's three findings at this scale:
    the published form breaks on negative taps, the remedied FLMS is LMS with a weight-dependent step
    (frozen-step steady state within 0.5 dB), and LMS/NLMS at matched steady state is at least as
    fast (speed ratio <= 1.1 for every remedied algorithm, order and setting, all matched)."""
    reasons = []
    if not metrics.get("published_min_broken_fraction", 0.0) >= 0.99:
        reasons.append(f"the published FLMS broke in only {metrics.get('published_min_broken_fraction', 0.0):.0%} of runs")
    if not metrics.get("frozen_step_max_gap_db", math.inf) <= 0.5:
        reasons.append(f"FLMS vs frozen-step LMS steady states differ by {metrics.get('frozen_step_max_gap_db', math.nan):.2f} dB (> 0.5)")
    if not metrics.get("remedied_matched_fraction", 0.0) >= 1.0:
        reasons.append(f"only {metrics.get('remedied_matched_fraction', 0.0):.0%} of the remedied runs could be matched in steady state")
    if not metrics.get("remedied_max_speed_ratio", math.inf) <= 1.1:
        reasons.append(f"LMS at matched steady state was up to {metrics.get('remedied_max_speed_ratio', math.nan):.2f}x slower (> 1.1)")
    if not metrics.get("fsd_caputo_max_error_to_prediction", math.inf) < 1e-3:
        reasons.append("Caputo fractional steepest descent did not stop at (2 - f) w*")
    return Gate(passed=not reasons, reasons=tuple(reasons))
