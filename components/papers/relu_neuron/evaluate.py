"""The evaluate stage: the grid of flows, the references, the registered neuron on held-out data.

Which claim each summary checks (see README.md for the paper's statements):
* ``norm_monotone``: the norm of w never decreases along the flow (small initialisation);
* ``no_reactivation``: no sample leaves the active set and comes back;
* ``inside_small_*``: the claims on the data inside the assumptions (positive inputs and labels,
  data.py), small w(0): the gate asks all of them in every run there;
* ``global_min``: the flow reaches a global minimum (d = 2 teacher data: global convergence);
* ``span_ever`` / ``span_support`` / ``characterized``: w(inf) - w(0) lies in the span of the
  samples ever active / of the support vectors, and w(inf) is the support vectors' interpolant
  nearest w(0) (analysis.py);
* the linear neuron's limit is its nearest interpolant (the minimum-norm one for small w(0));
* ``gd_max_relative_gap``: the integrated flow agrees with small-step gradient descent.
"""

from __future__ import annotations

import math

import pandas as pd

from components.contract import Gate, RunContext
from components.papers.relu_neuron.config import ReluNeuronConfig
from components.papers.relu_neuron.data import load_split
from components.papers.relu_neuron.experiments import gd_agreement, linear_contrast, run_grid
from components.papers.relu_neuron.flow import loss
from components.papers.relu_neuron.model import load
from components.papers.relu_neuron.report import write_reports

TOL = 1e-8  # a span residual / characterization error below this counts as exact
INSIDE = "positive"  # the data kind that meets the assumptions (data.py); the others are outside them


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (data, d, scale): fractions of the runs whose w(0) activates a sample, and medians.

    A w(0) with no active sample (``dead_init``) is a stationary point: the flow never moves, every
    claim is about flows that start, so those runs are counted (``dead_inits``) and left out.
    """

    def agg(g: pd.DataFrame) -> pd.Series:
        dead = g["dead_init"] > 0
        a = g[~dead]
        return pd.Series(
            {
                "runs": len(a),
                "dead_inits": int(dead.sum()),
                "converged": a["converged"].mean(),
                "norm_monotone": a["norm_monotone"].mean(),
                "norm_ratio_median": a["norm_ratio"].median(),
                "global_min": a["global_min"].mean()
                if "global_min" in a and a["global_min"].notna().any()
                else math.nan,
                "no_reactivation": (a["reactivations"] == 0).mean(),
                "span_ever": (a["span_residual_ever_active"] < TOL).mean(),
                "span_support": (a["span_residual_support"] < TOL).mean(),
                "characterized": (a["characterization_error"] < 1e-6).mean(),
                "support_is_ever_active": a["support_is_ever_active"].mean(),
                "reactivations_mean": a["reactivations"].mean(),
                "events_mean": a["events"].mean(),
            }
        )

    return df.groupby(["data", "d", "n", "scale"]).apply(agg, include_groups=False).reset_index()


def clopper_pearson_lower(k: int, n: int, level: float = 0.95) -> float:
    """One-sided ``level`` lower confidence bound of a binomial proportion with k successes in n."""
    from scipy.stats import beta

    return 0.0 if k == 0 else float(beta.ppf(1 - level, k, n - k + 1))


def proportion_contrast(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """(mean(a) - mean(b), its standard error) for two independent samples of 0/1 outcomes."""
    pa, pb = float(a.mean()), float(b.mean())
    return pa - pb, math.sqrt(pa * (1 - pa) / len(a) + pb * (1 - pb) / len(b))


def claims_inside(runs: pd.DataFrame, small_scale: float) -> tuple[dict[str, float], pd.DataFrame]:
    """The claims on the data inside the assumptions, small w(0), live inits: one 0/1 column per
    claim and the per-run conjunction ``all``, with counts and 95 % lower bounds per d and pooled."""
    sel = runs[(runs["data"] == INSIDE) & (runs["scale"] <= small_scale) & (runs["dead_init"] == 0)]
    ok = pd.DataFrame(
        {
            "d": sel["d"],
            "norm_monotone": sel["norm_monotone"] > 0,
            "no_reactivation": sel["reactivations"] == 0,
            "characterized": sel["characterization_error"] < 1e-6,
            "global_min": sel["global_min"] > 0,
        }
    )
    ok["all"] = ok[["norm_monotone", "no_reactivation", "characterized", "global_min"]].all(axis=1)
    out: dict[str, float] = {}
    for label, g in [("", ok)] + [(f"_d{d}", g) for d, g in ok.groupby("d")]:
        for col in ("norm_monotone", "no_reactivation", "characterized", "global_min", "all"):
            out[f"inside_small{label}_{col}"] = float(g[col].mean()) if len(g) else math.nan
        out[f"inside_small{label}_runs"] = float(len(g))
        out[f"inside_small{label}_all_lower95"] = (
            clopper_pearson_lower(int(g["all"].sum()), len(g)) if len(g) else math.nan
        )
    return out, ok


def evaluate(cfg: ReluNeuronConfig, ctx: RunContext) -> dict[str, float]:
    ex = cfg.experiments
    runs, keep = run_grid(cfg, ctx.progress)
    summary = summarize(runs)
    gd = gd_agreement(cfg)
    lin = linear_contrast(cfg)
    metrics: dict[str, float] = {}
    for r in summary.to_dict("records"):
        key = f"{r['data']}_d{r['d']}/scale{r['scale']:g}"
        for col in ("norm_monotone", "global_min", "span_support", "characterized", "converged", "no_reactivation"):
            metrics[f"{key}/{col}"] = r[col]
    inside, inside_ok = claims_inside(runs, ex.small_scale)
    metrics.update(inside)
    live = runs[runs["dead_init"] == 0]
    small = live["scale"] <= ex.small_scale
    # outside the assumptions: the Gaussian teacher, reported (not gated) beside the inside case
    t_small = live[(live["data"] == "teacher") & small]
    p_small = live[(live["data"] == INSIDE) & small]
    if len(t_small) and len(p_small):
        for col in ("norm_monotone",):
            diff, se = proportion_contrast(p_small[col] > 0, t_small[col] > 0)
            metrics[f"inside_minus_teacher_small_{col}"], metrics[f"inside_minus_teacher_small_{col}_se"] = diff, se
        diff, se = proportion_contrast(p_small["reactivations"] == 0, t_small["reactivations"] == 0)
        (
            metrics["inside_minus_teacher_small_no_reactivation"],
            metrics["inside_minus_teacher_small_no_reactivation_se"],
        ) = diff, se
    teacher, ssmall = summary[summary["data"] == "teacher"], summary["scale"] <= ex.small_scale
    ts = summary[(summary["data"] == "teacher") & ssmall]
    metrics["small_init_teacher_norm_monotone_min"] = float(ts["norm_monotone"].min()) if len(ts) else math.nan
    metrics["small_init_teacher_norm_monotone_pooled"] = (
        float((t_small["norm_monotone"] > 0).mean()) if len(t_small) else math.nan
    )
    big = teacher[teacher["scale"] >= 1.0]
    metrics["large_init_teacher_norm_monotone_max"] = float(big["norm_monotone"].max()) if len(big) else math.nan
    d2 = teacher[teacher["d"] == 2]
    d2_small = d2[d2["scale"] <= ex.small_scale]
    metrics["d2_teacher_global_min_min"] = float(d2_small["global_min"].min()) if len(d2_small) else math.nan
    metrics["d2_teacher_global_min_any_scale"] = float(d2["global_min"].min()) if len(d2) else math.nan
    metrics["span_ever_active_fraction"] = float(summary["span_ever"].min())
    gauss = summary[summary["data"] != INSIDE]
    low = gauss[gauss["d"] <= 2]
    high = gauss[gauss["d"] > gauss["n"]]
    metrics["d2_characterized_fraction"] = float(low["characterized"].min()) if len(low) else math.nan
    # the d >> n support-vector check outside the assumptions (fails there: README.md)
    metrics["highdim_span_support_fraction"] = float(high["span_support"].mean()) if len(high) else math.nan
    metrics["highdim_characterized_fraction"] = float(high["characterized"].mean()) if len(high) else math.nan
    t_high = live[(live["data"] == "teacher") & (live["d"] > live["n"])]
    metrics["highdim_teacher_characterized_fraction"] = (
        float((t_high["characterization_error"] < 1e-6).mean()) if len(t_high) else math.nan
    )
    metrics["reactivation_rate"] = float((runs["reactivations"] > 0).mean())
    metrics["gd_max_relative_gap"] = float(gd["relative_gap"].max()) if len(gd) else math.nan
    metrics["linear_max_error_to_nearest"] = float(lin["error_to_nearest"].max())
    small_lin = lin[lin["scale"] <= ex.small_scale]
    metrics["linear_small_init_max_error_to_min_norm"] = (
        float(small_lin["error_to_min_norm"].max()) if len(small_lin) else math.nan
    )

    neuron = load(ctx.model_dir)
    for split in ("train", "test"):
        x, y = load_split(ctx.data_dir, split)
        metrics[f"neuron_{split}_mse"] = 2 * loss(neuron.w, x, y) / len(y)
    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    write_reports(ctx, runs, summary, gd, lin, keep, metrics, gate(metrics))
    return metrics


def gate(metrics: dict[str, float]) -> Gate:
    """Champion iff the integration is faithful and the claims hold in every run where the
    assumptions hold (positive inputs and labels, small w(0) that activates a sample: the norm never
    decreases, no sample reactivates, w(inf) is the support vectors' nearest interpolant in d = 2 and
    in d = 100 >> n, the loss reaches 0), plus the d = 2 results that hold on every Gaussian-teacher
    run (global minimum from small w(0), the support-vector characterization) and the linear neuron
    at its nearest interpolant. Each of these is a 100 % criterion over counted runs (no two noisy
    numbers are compared); the Gaussian teacher's norm fraction and its d = 100 support-vector
    check are outside the assumptions and only reported."""
    reasons = []

    def need(key: str, ok, text: str) -> None:
        value = metrics.get(key, math.nan)
        if not (math.isfinite(value) and ok(value)):
            reasons.append(f"{text} ({key} = {value:.3g})")

    need("gd_max_relative_gap", lambda v: v <= 0.02, "flow and gradient descent disagree by more than 2 %")
    need("inside_small_runs", lambda v: v >= 1, "no small-init run on the data inside the assumptions")
    need(
        "inside_small_all",
        lambda v: v >= 1.0,
        "inside the assumptions a small-init run broke a claim (norm, reactivation, support vectors or global min)",
    )
    need("d2_teacher_global_min_min", lambda v: v >= 1.0, "a small-init d = 2 teacher run missed the global minimum")
    need(
        "d2_characterized_fraction", lambda v: v >= 1.0, "a d = 2 limit is not the support vectors' nearest interpolant"
    )
    need("linear_max_error_to_nearest", lambda v: v <= 1e-6, "the linear neuron did not reach its nearest interpolant")
    return Gate(passed=not reasons, reasons=tuple(reasons))
