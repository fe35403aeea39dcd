"""Reports of an evaluation: results.csv (tidy), results.md (tables beside the paper's claim), figures."""

from __future__ import annotations

import math

import pandas as pd
import torch

from components.contract import RunContext
from components.papers.ccdf.config import CCDFConfig

PAPER_CLAIM = """\
The paper (Chung, Sim & Ye, CVPR 2022; Sec. 4, Tables 1-3, Figs. 4-6) reports that CCDF with
t0 = 0.2 of N = 100 (N' = 20 reverse steps) matches or beats the same score model run for 1000
steps from noise (ILVR for SR x4 on FFHQ/AFHQ 256, score-SDE replacement for inpainting,
score-POCS for CS-MRI x4 on fastMRI knees), is far above 20 steps from noise, and beats classical
and feed-forward baselines (e.g. CS-MRI x4: TV and U-Net well below CCDF in PSNR); Theorem 1: the
error contracts geometrically from where the reverse process starts, so a better x0_hat allows a
smaller t0. The paper's absolute numbers (256x256 faces / knees, ADM / NCSN++ networks trained for
days) are not comparable to 64x64 grey images and a 0.27M-parameter network trained for two
minutes on a CPU; the check here is the relations, paired over images with standard errors."""

COLUMNS = [
    "method",
    "nfe",
    "images",
    "psnr",
    "ssim",
    "swd",
    "null_err",
    "ccdf_minus",
    "ccdf_minus_se",
    "ccdf_minus_swd",
    "ccdf_minus_swd_se",
    "wall_s",
]


def _gate_lines(metrics: dict[str, float], tasks: list[str]) -> list[str]:
    z = metrics.get("gate/z", 2.0)
    lines = [
        (
            "| task | chosen on validation (init, t0, N') | CCDF PSNR | - N' from noise (dB) "
            "| - 1000 from noise (dB) | "
            "- classical, PSNR dB | - classical, patch SWD |"
        ),
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(t: str, name: str, kind: str = "d", gated: str | None = None) -> str:
        d, se = metrics.get(f"{t}/gate/{kind}_{name}", math.nan), metrics.get(f"{t}/gate/{kind}_{name}_se", math.nan)
        if math.isnan(d):
            return "not run"
        g = "" if gated is None else (" **gated**" if metrics.get(gated, 0) > 0 else " (reported)")
        return f"{d:+.2f} +- {se:.2f} ({'beyond' if abs(d) > z * se else 'within'} {z:g} se){g}"

    for t in tasks:
        init = next((k.rsplit("init_", 1)[1] for k in metrics if k.startswith(f"{t}/select/init_")), "?")
        classical = [
            k.split("/gate/d_")[1] for k in metrics if k.startswith(f"{t}/gate/d_classical_") and not k.endswith("_se")
        ]
        cp = "; ".join(
            f"{c.removeprefix('classical_')}: {fmt(t, c, 'd', f'{t}/gate/psnr_gated_{c}')}" for c in classical
        )
        cs = "; ".join(
            f"{c.removeprefix('classical_')}: {fmt(t, c, 'dswd', f'{t}/gate/swd_gated_{c}')}" for c in classical
        )
        lines.append(
            f"| {t} | {init}, {metrics.get(f'{t}/select/t0', math.nan):g}, "
            f"{metrics.get(f'{t}/select/n_prime', math.nan):g} | "
            f"{metrics.get(f'{t}/gate/ccdf_psnr', math.nan):.2f} | {fmt(t, 'noise')} **gated** | "
            f"{fmt(t, 'full', 'd', f'{t}/gate/full_gated')} | {cp} | {cs} |"
        )
    return lines


def write_reports(
    ctx: RunContext,
    df: pd.DataFrame,
    examples: dict[str, dict[str, torch.Tensor]],
    metrics: dict[str, float],
    selections: dict[str, dict],
    cfg: CCDFConfig,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from components.papers.ccdf.evaluate import gate

    out = ctx.report_dir
    (out / "figures").mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False, float_format="%.4f")
    ctx.logger.log_table(df, "results.json")
    tasks = list(dict.fromkeys(df.task))
    g = gate(metrics)
    md = [
        "# CCDF (arXiv 2112.05146): results",
        "",
        (
            "Command: `paperops run ccdf` (default scale of params.yaml). "
            f"Test images: {cfg.data.size}x{cfg.data.size} grey, never trained on: photographs "
            f"{', '.join(cfg.data.test_photos)} (two views each) for sr / inpaint; real MR slices "
            f"{cfg.data.mri_test_slices[0]}..{cfg.data.mri_test_slices[1]} of the volume (training slices "
            f"{cfg.data.mri_train_slices[0]}..{cfg.data.mri_train_slices[1]}, validation "
            f"{cfg.data.mri_val_slices[0]}..{cfg.data.mri_val_slices[1]}) for mri_x*. "
            f"N = {cfg.sampling.steps}, N' = t0 N. "
            "PSNR in dB on [0, 1]; SWD = sliced Wasserstein distance of 7x7 patch distributions (x100, lower = closer "
            "texture); null_err = RMSE of the error's null-space part (I - A^+ A)(x_hat - x) (SR only: the part data "
            "consistency cannot fix); ccdf_minus +- se = paired per-image PSNR difference of the chosen CCDF "
            "minus that "
            "row, with its standard error, over the row's images (one fixed sampler seed)."
        ),
        "",
        f"## Gate: {'PASSED' if g.passed else 'NOT passed'}",
        "",
        *_gate_lines(metrics, tasks),
        "",
    ]
    if not g.passed:
        md += ["Reasons:", "", *[f"* {r}" for r in g.reasons], ""]
    md += [
        "## Chosen on validation (not on test images)",
        "",
        "| task | TV lambda (val MSE per lambda) | CCDF init, t0 | val PSNR per (init, t0) |",
        "|---|---|---|---|",
    ]
    for t, sel in selections.items():
        tv = ", ".join(f"{k:g}: {v:.4f}" for k, v in sel["tv_scores"].items())
        sc = ", ".join(f"{i}/{t0:g}: {v:.2f}" for (i, t0), v in sel["scores"].items())
        md.append(f"| {t} | {sel['tv_lambda']:g} ({tv}) | {sel['init']}, {sel['t0']:g} | {sc} |")
    md.append("")
    for t in tasks:
        cols = [c for c in COLUMNS if c in df.columns and df[df.task == t][c].notna().any()]
        md += [f"## {t}", "", df[df.task == t][cols].to_markdown(index=False, floatfmt=".3f"), ""]
    md += ["## The paper's claim", "", PAPER_CLAIM, ""]
    (out / "results.md").write_text("\n".join(md))

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=True):
        gt = df[df.task == t]
        c = gt[gt.method.str.startswith("ccdf")].copy()
        c["t0"] = c.method.str.extract(r"t0=([0-9.]+)")[0].astype(float)
        c = c.sort_values("t0")
        ax.plot(c.t0, c.psnr, "o-", label=f"CCDF ({selections[t]['init']} init)")
        for _, r in gt[~gt.method.str.startswith("ccdf")].iterrows():
            ax.axhline(r.psnr, ls="--" if r.method.startswith("noise") else "-.", lw=0.9, label=r.method, color=None)
        ax.set_xlabel("t0 (N' = t0 N)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(t)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "figures" / "psnr_vs_t0.png", dpi=100)
    ctx.logger.log_figure(fig, "psnr_vs_t0.png")
    plt.close(fig)

    ncols = max(len(e) for e in examples.values())
    fig, axes = plt.subplots(len(examples), ncols, figsize=(1.9 * ncols, 2.1 * len(examples)), squeeze=False)
    for row, (t, imgs) in zip(axes, examples.items(), strict=True):
        truth = imgs["truth"]
        for ax in row:
            ax.axis("off")
        for ax, (label, img) in zip(row, imgs.items(), strict=False):
            ax.imshow(((img[0, 0].float().cpu() + 1) / 2).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            mse = float(((img.float().cpu() - truth.cpu()) / 2).pow(2).mean())
            ax.set_title(
                f"{t}: {label}" if label == "truth" else f"{label}\n{-10 * math.log10(mse + 1e-12):.1f} dB", fontsize=6
            )
    fig.tight_layout()
    fig.savefig(out / "figures" / "examples.png", dpi=100)
    ctx.logger.log_figure(fig, "examples.png")
    plt.close(fig)
