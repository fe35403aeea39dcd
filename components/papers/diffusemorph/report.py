"""``reports/diffusemorph/``: results.md, results.csv and figures (DVC outputs) and their MLflow copies."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from components.contract import Gate, RunContext
from components.papers.diffusemorph.config import DiffuseMorphConfig
from components.papers.diffusemorph.model import warp

LABELS = {
    "identity": "identity (no warp)",
    "diffusemorph": "DiffuseMorph (eta = 1)",
    "voxelmorph": "VoxelMorph-style (same field net on [M, F])",
    "tvl1": "TV-L1 optical flow (scikit-image)",
}


def _pm(metrics: dict[str, float], key: str, fmt: str) -> str:
    if key not in metrics:
        return ""
    return f"{metrics[key]:{fmt}} +- {metrics[key + '_se']:{fmt.lstrip('+')}}"


def markdown(cfg: DiffuseMorphConfig, metrics: dict[str, float], methods: list[str], verdict: Gate) -> str:
    from components.papers.diffusemorph.evaluate import dice_holds_vs_baseline  # evaluate imports this module

    gated = (
        "gated" if metrics.get("gate/dice_vs_baseline_gated", 1.0) >= 1 else "not gated at this scale, see README.md"
    )

    d = cfg.data
    shape = f"{d.size}x{d.size}" + (f"x{d.depth}" if d.dims == 3 else "")
    n = int(metrics["test_pairs"])
    md = [
        "# DiffuseMorph (arXiv 2112.05149): results",
        "",
        f"Command: `paperops run diffusemorph` (scale as in params.yaml). {n} test pairs ({d.dims}-D, {shape}, "
        f"source `{d.source}`; synthetic pairs come from base images never trained on), seed {cfg.seed}, "
        f"{cfg.train.steps} training steps of batch {cfg.train.batch_size}. Every value is a mean +- standard "
        "error over the test pairs; the paired columns are DiffuseMorph minus the row, per pair. s / pair is "
        "CPU seconds of one registration (process time, so other load on a shared machine does not count).",
        "",
        f"## Gate: {'PASSED' if verdict.passed else 'NOT passed'}",
        "",
        *(
            [f"* {r}" for r in verdict.reasons]
            or ["* every gated part of the claim holds (see README.md for the parts)"]
        ),
        "",
        "Dice within noise of the VoxelMorph-style baseline or better (the paper's claim): "
        f"{'holds' if dice_holds_vs_baseline(metrics) else 'does NOT hold'} "
        f"({_pm(metrics, 'gate/dice_minus_voxelmorph', '+.4f')}; "
        f"{gated}).",
        "",
        "| method | Dice | folding % | CPU s / pair | mean abs(u) px | Dice: DM - row | folding %: DM - row |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in [m for m in methods if m in LABELS]:
        md.append(
            f"| {LABELS[k]} | {_pm(metrics, f'{k}/dice', '.4f')} | {_pm(metrics, f'{k}/folding', '.3f')} "
            f"| {metrics[f'{k}/seconds']:.4f} | {metrics[f'{k}/disp']:.3f} "
            f"| {_pm(metrics, f'gate/dice_minus_{k}', '+.4f')} | {_pm(metrics, f'gate/folding_minus_{k}', '+.3f')} |"
        )
    md += [
        "",
        "## The deformation continuum (score scaled by eta)",
        "",
        "| eta | Dice | folding % | mean abs(u) px |",
        "|---|---|---|---|",
    ]
    for k in [m for m in methods if m.startswith("eta_")]:
        md.append(
            f"| {k.removeprefix('eta_')} | {_pm(metrics, f'{k}/dice', '.4f')} | {_pm(metrics, f'{k}/folding', '.3f')} "
            f"| {_pm(metrics, f'{k}/disp', '.3f')} |"
        )
    md += [
        "",
        f"Displacement eta = 1 minus eta = 0: {_pm(metrics, 'gate/eta_disp_gain', '+.3f')} px (paired); "
        f"monotone: {bool(metrics['gate/eta_disp_monotone'])}; largest share of that change in one eta step: "
        f"{metrics['gate/eta_disp_max_step_share']:.0%} (linear: {1 / max(1, len(cfg.eval.etas) - 1):.0%}); "
        f"largest folding over eta: {metrics['gate/eta_max_folding']:.3f} %.",
        "",
    ]
    return "\n".join(md)


def _rows(metrics: dict[str, float], methods: list[str]) -> list[dict[str, Any]]:
    out = []
    for k in methods:
        row: dict[str, Any] = {"method": k}
        for q in ("dice", "folding", "seconds", "disp"):
            row[q], row[f"{q}_se"] = metrics[f"{k}/{q}"], metrics[f"{k}/{q}_se"]
        out.append(row)
    return out


def write_report(
    ctx: RunContext,
    cfg: DiffuseMorphConfig,
    metrics: dict[str, float],
    methods: list[str],
    test: dict[str, torch.Tensor],
    flows: dict[str, torch.Tensor],
    verdict: Gate,
) -> None:
    """results.md / .csv and two figures: the eta continuum and the first test pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    out = ctx.report_dir
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(markdown(cfg, metrics, methods, verdict))
    table = pd.DataFrame(_rows(metrics, methods))
    table.to_csv(out / "results.csv", index=False, float_format="%.5f")
    ctx.logger.log_table(table, "results.json")

    etas = [m for m in methods if m.startswith("eta_")]
    x = [float(e.removeprefix("eta_")) for e in etas]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, (q, label) in zip(
        axes, (("disp", "mean |u| (px)"), ("dice", "Dice"), ("folding", "folding %")), strict=True
    ):
        y = [metrics[f"{e}/{q}"] for e in etas]
        se = [metrics[f"{e}/{q}_se"] for e in etas]
        ax.errorbar(x, y, yerr=se, marker="o", capsize=3, label="DiffuseMorph")
        if q != "disp":
            ax.axhline(metrics[f"voxelmorph/{q}"], color="C1", ls="--", label="VoxelMorph-style")
            ax.axhline(metrics[f"identity/{q}"], color="grey", ls=":", label="identity")
        ax.set_xlabel("eta")
        ax.set_ylabel(label)
    axes[1].legend(fontsize=7)
    fig.suptitle("DiffuseMorph: the deformation continuum (mean +- se over test pairs)")
    fig.tight_layout()
    fig.savefig(out / "figures" / "eta_continuum.png", dpi=90)
    ctx.logger.log_figure(fig, "eta_continuum.png")
    plt.close(fig)

    def plane(v: torch.Tensor) -> np.ndarray:  # (*S) -> a 2-D view (the central slice in 3-D)
        return (v[..., v.shape[-1] // 2] if v.dim() == 3 else v).numpy()

    m, f = (test["moving"][0:1] + 1) / 2, (test["fixed"][0:1] + 1) / 2
    panels = [("moving", plane(m[0, 0])), ("fixed", plane(f[0, 0]))]
    for k in ("diffusemorph", "voxelmorph", "tvl1"):
        panels.append((k, plane(warp(m, flows[k][None])[0, 0])))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 2.6))
    for ax, (title, img) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "figures" / "example_pair.png", dpi=90)
    ctx.logger.log_figure(fig, "example_pair.png")
    plt.close(fig)
