"""The evaluate stage: the grid of flows, the references, the registered neuron on held-out data.

Which claim each summary checks (see README.md for the paper's statements):
* ``norm_monotone``: the norm of w strictly increases along the flow (small initialisation);
* ``global_min``: the flow reaches a global minimum (d = 2 teacher data: global convergence);
* ``span_ever`` / ``span_support`` / ``characterized``: w(inf) - w(0) lies in the span of the
  samples ever active / of the support vectors, and w(inf) is the support vectors' interpolant
  nearest w(0) (analysis.py);
* the linear neuron's limit is its nearest interpolant (the minimum-norm one for small w(0));
* ``gd_max_relative_gap``: the integrated flow agrees with small-step gradient descent.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from components.contract import Gate, RunContext
from components.papers.relu_neuron.config import ReluNeuronConfig
from components.papers.relu_neuron.data import load_split
from components.papers.relu_neuron.experiments import gd_agreement, linear_contrast, run_grid
from components.papers.relu_neuron.flow import loss
from components.papers.relu_neuron.model import load
from components.papers.relu_neuron.report import write_reports

TOL = 1e-8  # a span residual / characterization error below this counts as exact


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (data, d, scale): fractions of runs and medians."""
    def agg(g: pd.DataFrame) -> pd.Series:
        return pd.Series({
            "runs": len(g), "converged": g["converged"].mean(), "norm_monotone": g["norm_monotone"].mean(),
            "norm_ratio_median": g["norm_ratio"].median(),
            "global_min": g["global_min"].mean() if "global_min" in g and g["global_min"].notna().any() else math.nan,
            "span_ever": (g["span_residual_ever_active"] < TOL).mean(),
            "span_support": (g["span_residual_support"] < TOL).mean(),
            "characterized": (g["characterization_error"] < 1e-6).mean(),
            "support_is_ever_active": g["support_is_ever_active"].mean(),
            "reactivations_mean": g["reactivations"].mean(), "events_mean": g["events"].mean(),
        })

    return df.groupby(["data", "d", "n", "scale"]).apply(agg, include_groups=False).reset_index()


def evaluate(cfg: ReluNeuronConfig, ctx: RunContext) -> dict[str, float]:
    ex = cfg.experiments
    runs, keep = run_grid(cfg, ctx.progress)
    summary = summarize(runs)
    gd = gd_agreement(cfg)
    lin = linear_contrast(cfg)
    metrics: dict[str, float] = {}
    for r in summary.to_dict("records"):
        key = f"{r['data']}_d{r['d']}/scale{r['scale']:g}"
        for col in ("norm_monotone", "global_min", "span_support", "characterized", "converged"):
            metrics[f"{key}/{col}"] = r[col]
    teacher, small = summary[summary["data"] == "teacher"], summary["scale"] <= ex.small_scale
    ts = summary[(summary["data"] == "teacher") & small]
    metrics["small_init_teacher_norm_monotone_min"] = float(ts["norm_monotone"].min()) if len(ts) else math.nan
    big = teacher[teacher["scale"] >= 1.0]
    metrics["large_init_teacher_norm_monotone_max"] = float(big["norm_monotone"].max()) if len(big) else math.nan
    d2 = teacher[teacher["d"] == 2]
    d2_small = d2[d2["scale"] <= ex.small_scale]
    metrics["d2_teacher_global_min_min"] = float(d2_small["global_min"].min()) if len(d2_small) else math.nan
    metrics["d2_teacher_global_min_any_scale"] = float(d2["global_min"].min()) if len(d2) else math.nan
    metrics["span_ever_active_fraction"] = float(summary["span_ever"].min())
    low = summary[summary["d"] <= 2]
    high = summary[summary["d"] > summary["n"]]
    metrics["d2_characterized_fraction"] = float(low["characterized"].min()) if len(low) else math.nan
    metrics["highdim_span_support_fraction"] = float(high["span_support"].mean()) if len(high) else math.nan
    metrics["highdim_characterized_fraction"] = float(high["characterized"].mean()) if len(high) else math.nan
    metrics["reactivation_rate"] = float((runs["reactivations"] > 0).mean())
    metrics["gd_max_relative_gap"] = float(gd["relative_gap"].max()) if len(gd) else math.nan
    metrics["linear_max_error_to_nearest"] = float(lin["error_to_nearest"].max())
    small_lin = lin[lin["scale"] <= ex.small_scale]
    metrics["linear_small_init_max_error_to_min_norm"] = float(small_lin["error_to_min_norm"].max()) if len(small_lin) else math.nan

    neuron = load(ctx.model_dir)
    for split in ("train", "test"):
        x, y = load_split(ctx.data_dir, split)
        metrics[f"neuron_{split}_mse"] = 2 * loss(neuron.w, x, y) / len(y)
    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    write_reports(ctx, runs, summary, gd, lin, keep, metrics, gate(metrics))
    return metrics


def gate(metrics: dict[str, float]) -> Gate:
    """Champion iff the integration is faithful and the paper's claims show where it proves them:
    flow vs gradient descent within 2 %, the norm increasing in >= 80 % of small-initialisation
    teacher runs, global convergence in every small-initialisation d = 2 teacher run, w(inf) characterised by the support
    vectors in every d = 2 run, and the linear neuron at its nearest interpolant."""
    reasons = []

    def need(key: str, ok, text: str) -> None:
        value = metrics.get(key, math.nan)
        if not (math.isfinite(value) and ok(value)):
            reasons.append(f"{text} ({key} = {value:.3g})")

    need("gd_max_relative_gap", lambda v: v <= 0.02, "flow and gradient descent disagree by more than 2 %")
    need("small_init_teacher_norm_monotone_min", lambda v: v >= 0.8, "the norm increased monotonically in < 80 % of small-init teacher runs")
    need("d2_teacher_global_min_min", lambda v: v >= 1.0, "a small-init d = 2 teacher run missed the global minimum")
    need("d2_characterized_fraction", lambda v: v >= 1.0, "a d = 2 limit is not the support vectors' nearest interpolant")
    need("linear_max_error_to_nearest", lambda v: v <= 1e-6, "the linear neuron did not reach its nearest interpolant")
    return Gate(passed=not reasons, reasons=tuple(reasons))
