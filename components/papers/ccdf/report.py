"""Reports of an evaluation: results.csv (tidy), results.md (tables beside the paper's claim), figures."""

from __future__ import annotations

import pandas as pd
import torch

from components.contract import RunContext
from components.papers.ccdf.config import CCDFConfig

PAPER_CLAIM = """\
The paper (Chung, Sim & Ye, CVPR 2022; Sec. 4, Tables 1-3, Figs. 4-6) reports that CCDF with
t0 = 0.2 of N = 100 (N' = 20 reverse steps) matches or beats the same score model run for 1000
steps from noise (ILVR for SR x4 on FFHQ/AFHQ 256, score-SDE replacement for inpainting, score-POCS
for CS-MRI x4 on fastMRI), far above 20 steps from noise, and that a better initialiser (a
supervised feed-forward network) lets a smaller t0 reach the best result (Theorem 1: the error
contracts geometrically from where the reverse process starts). We compare the same quantities at
our scale; the paper's absolute numbers (256x256 faces/knees, ADM networks) are not comparable to
32x32 grey patches with a 0.3M-parameter network, so the check is relational: CCDF(N' <= 20)
>= 1000-step - margin and > N'-step from noise."""

COLUMNS = ["method", "init", "t0", "nfe", "psnr", "psnr_sub", "d_full", "d_full_se", "ssim", "swd", "wall_s"]


def _gate_lines(metrics: dict[str, float], tasks: list[str]) -> list[str]:
    n, margin = metrics["gate/n_prime"], metrics["gate/psnr_margin_db"]
    lines = [f"| task | CCDF N'={n:g} (best init) | 1000 steps from noise | {n:g} steps from noise | within {margin:g} dB | beats N' from noise | best t0 simple | best t0 network |",
             "|---|---|---|---|---|---|---|---|"]
    for t in tasks:
        c, f, z = (metrics.get(f"{t}/gate/{k}_psnr", float("nan")) for k in ("ccdf", "full", "noise"))
        lines.append(f"| {t} | {c:.2f} | {f:.2f} | {z:.2f} | {'met' if c >= f - margin else 'NOT met'} | "
                     f"{'met' if c > z else 'NOT met'} | {metrics.get(f'{t}/best_t0_simple', float('nan')):g} | "
                     f"{metrics.get(f'{t}/best_t0_network', float('nan')):g} |")
    return lines


def write_reports(ctx: RunContext, df: pd.DataFrame, examples: dict[str, dict[str, torch.Tensor]],
                  metrics: dict[str, float], cfg: CCDFConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = ctx.report_dir
    (out / "figures").mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False, float_format="%.4f")
    ctx.logger.log_table(df, "results.json")
    tasks = list(dict.fromkeys(df.task))
    md = ["# CCDF (arXiv 2112.05146): results", "",
          f"Scale: {cfg.data.size}x{cfg.data.size} grey images, {int(df.images.max())} held-out images per task "
          f"(the 1000-step baseline on the first {cfg.eval.full_count}; `psnr_sub` = PSNR on those). N = {cfg.sampling.steps}, "
          "N' = t0 N. PSNR in dB, SWD = sliced Wasserstein distance of 7x7 patch distributions (x100, lower is better), "
          "NFE = network evaluations per image, wall = seconds per image (batched), d_full +- d_full_se = "
          "paired per-image PSNR difference to 1000 steps from noise (same images) and its standard error (one "
          "sampler seed: differences below ~2 se are not resolved).", "",
          "## Gate (the issue's claim)", "", *_gate_lines(metrics, tasks), ""]
    for t in tasks:
        md += [f"## {t}", "", df[df.task == t][COLUMNS].to_markdown(index=False, floatfmt=".3f"), ""]
    md += ["## The paper's claim", "", PAPER_CLAIM, ""]
    (out / "results.md").write_text("\n".join(md))

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=True):
        g = df[df.task == t]
        colours = {"simple": "tab:blue", "network": "tab:orange"}
        for init, gi in g[g.method == "ccdf"].groupby("init"):
            ax.plot(gi.t0, gi.psnr, "o-", color=colours[init], label=f"CCDF, {init} init")
        noise = g[(g.method == "noise") & (g.nfe < cfg.sampling.full_steps)]
        ax.plot(noise.t0, noise.psnr, "s--", color="grey", label="from noise, N' steps")
        full = g[(g.method == "noise") & (g.nfe == cfg.sampling.full_steps)]
        if len(full):
            ax.axhline(float(full.psnr_sub.iloc[0]), color="k", ls=":", label=f"from noise, {cfg.sampling.full_steps} steps")
        for _, r in g[g.method == "init"].iterrows():
            ax.axhline(r.psnr, ls="-.", lw=0.8, color=colours[r.init], alpha=0.6, label=f"{r.init} init alone")
        ax.set_xlabel("t0 (N' = t0 N)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(t)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "figures" / "psnr_vs_t0.png", dpi=100)
    ctx.logger.log_figure(fig, "psnr_vs_t0.png")
    plt.close(fig)

    cols = max(len(e) for e in examples.values())
    fig, axes = plt.subplots(len(examples), cols, figsize=(1.9 * cols, 2.1 * len(examples)), squeeze=False)
    for row, (t, imgs) in zip(axes, examples.items(), strict=True):
        truth = imgs["truth"]
        for ax in row:
            ax.axis("off")
        for ax, (label, img) in zip(row, imgs.items()):
            ax.imshow(((img[0, 0].float().cpu() + 1) / 2).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            mse = float(((img.float().cpu() - truth.cpu()) / 2).pow(2).mean())
            ax.set_title(f"{t}: {label}" if label == "truth" else f"{label}\n{-10 * torch.log10(torch.tensor(mse + 1e-12)):.1f} dB", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "figures" / "examples.png", dpi=100)
    ctx.logger.log_figure(fig, "examples.png")
    plt.close(fig)
