"""Reports of an evaluation: results.md (tables beside the paper's claim), results.csv, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from components.contract import RunContext
from components.papers.switchable_cyclegan.config import SwitchableCycleGANConfig

PAPER_CLAIM = """\
The paper (arXiv 2112.02896, on mechanically swept 3-D ultrasound; architecture of Yang et al.,
arXiv 2011.13150, official code YSerin/TMI_SwitchableCycleGAN) claims that one AdaIN-switchable
generator, trained as a CycleGAN between the slices of the 3-D volumes and unmatched high-quality
2-D images, enhances the degraded planes of the volume, that the enhancement is tuned continuously
by alpha at inference (real-time control, one network), and that it matches or beats a plain
CycleGAN with two generators (twice the generator parameters). The paper's quantitative results
are on real scans without a clean truth (no-reference measures and reader studies); we did not
find per-table numbers we could verify here, so the comparison below is relational at our scale
on synthetic phantoms whose truth is known."""

DIFFERENCES = """Synthetic 3-D phantoms with a known Gaussian elevational PSF instead of clinical mechanically swept
volumes (so a truth and Richardson-Lucy exist); a smaller U-Net, discriminator and code, small
crops and far fewer steps than the official defaults (the `paper` scale keeps them), with a learning
rate 50x the official one; at the default scale the generators' weights are exported as an EMA
(decay `train.ema_decay`) where the official code keeps the best validation epoch on paired data.
The switch runs the official assignment (the network's plain instance-norm path, alpha_net = 0,
enhances); the public alpha here is 1 - alpha_net so that 1 = full enhancement. As in the official
two-domain code, training uses alpha_net 0 and 1 only; intermediate alphas are never trained.
Details: components/papers/switchable_cyclegan/README.md."""


def _row(metrics: dict[str, float], m: str) -> dict[str, float | str]:
    row: dict[str, float | str] = {"method": m}
    for k in ("psnr", "ssim", "sharpness"):
        row[k] = metrics.get(f"{m}/{k}", float("nan"))
        if f"{m}/d_{k}" in metrics:
            row[f"d_{k}"] = metrics[f"{m}/d_{k}"]
            row[f"d_{k}_se"] = metrics[f"{m}/d_{k}_se"]
    return row


def write_reports(
    ctx: RunContext,
    cfg: SwitchableCycleGANConfig,
    values: dict,
    metrics: dict[str, float],
    examples: dict[str, torch.Tensor],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from components.papers.switchable_cyclegan.evaluate import gate

    out = ctx.report_dir
    (out / "figures").mkdir(parents=True, exist_ok=True)
    methods = [m for m in values if m != "truth"] + (["truth"] if "truth" in values else [])
    df = pd.DataFrame([_row(metrics, m) for m in methods])
    df.to_csv(out / "results.csv", index=False, float_format="%.4f")
    ctx.logger.log_table(df, "results.json")
    verdict = gate(metrics)
    cmp = []
    for ref in ("cyclegan", "rl"):
        if f"vs_{ref}/d_sharpness" in metrics:
            parts = [
                f"{k} {metrics[f'vs_{ref}/d_{k}']:+.3f} +- {metrics[f'vs_{ref}/d_{k}_se']:.3f}"
                for k in ("psnr", "ssim", "sharpness")
                if f"vs_{ref}/d_{k}" in metrics
            ]
            cmp.append(f"- switchable (alpha=1) minus {ref}: " + ", ".join(parts))
    md = [
        "# Switchable CycleGAN for 3-D ultrasound (arXiv 2112.02896): results",
        "",
        f"Held-out synthetic volumes {cfg.data.size}^3, {int(metrics['slices'])} degraded test slices "
        "(elevational-lateral and elevational-axial planes), "
        f"elevational blur sigma {cfg.data.sigma_elevational:g} voxels, "
        f"noise {cfg.data.noise_std:g}. PSNR in dB (data range 1); sharpness = 1e3 x mean squared elevational "
        "finite difference (no-reference). d_* = paired mean difference to the degraded input over the test slices, "
        "+- its SE (the larger of the per-slice and the per-volume-cluster SE). RL = Richardson-Lucy "
        f"({cfg.eval.rl_iterations} iterations) given the true PSF.",
        "",
        f"Run: seed {cfg.seed}; {cfg.train.steps} switchable + {cfg.train.baseline_steps} CycleGAN steps, "
        f"batch {cfg.train.batch_size}, lr {cfg.train.lr:g}, weight EMA decay {cfg.train.ema_decay:g} "
        "(0: last iterate); `paperops run switchable_cyclegan` at the scale params.yaml selects.",
        "",
        df.to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Side by side",
        "",
        *cmp,
        f"- parameters: switchable generator {metrics['params/switchable']:.0f} (one network, both directions); "
        + (
            f"CycleGAN {2 * metrics['params/cyclegan_one_generator']:.0f} (two generators)"
            if "params/cyclegan_one_generator" in metrics
            else ""
        ),
        f"- monotone in alpha: worst step PSNR {metrics.get('monotone/psnr_worst_step_z', float('nan')):.2f} SE, "
        f"sharpness {metrics.get('monotone/sharpness_worst_step_z', float('nan')):.2f} SE; "
        f"alpha 0 -> 1 sharpness range {metrics.get('monotone/sharpness_range_z', float('nan')):.1f} SE",
        "",
        "## Gate",
        "",
        f"**{'passed' if verdict.passed else 'NOT passed'}**" + "".join(f"\n- {r}" for r in verdict.reasons),
        "",
        "## The paper's claim",
        "",
        PAPER_CLAIM,
        "",
        "## What differs from the paper",
        "",
        DIFFERENCES,
        "",
    ]
    (out / "results.md").write_text("\n".join(md))

    alphas = list(cfg.eval.alphas)
    fig, axes = plt.subplots(1, 3 if "psnr" in values["degraded"] else 1, figsize=(12, 3.5), squeeze=False)
    for ax, k in zip(axes[0], [k for k in ("psnr", "ssim", "sharpness") if k in values["degraded"]], strict=False):
        mean = [metrics[f"alpha_{a:g}/{k}"] for a in alphas]
        se = [metrics.get(f"alpha_{a:g}/d_{k}_se", 0.0) for a in alphas]
        ax.errorbar(alphas, mean, yerr=se, marker="o", label="switchable G(x, alpha)")
        for ref, style in (("degraded", ":"), ("cyclegan", "--"), ("rl", "-."), ("truth", "-")):
            if f"{ref}/{k}" in metrics:
                ax.axhline(metrics[f"{ref}/{k}"], ls=style, color="grey" if ref != "truth" else "k", label=ref, lw=1)
        ax.set_xlabel("alpha")
        ax.set_title(k)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "figures" / "alpha_curve.png", dpi=100)
    ctx.logger.log_figure(fig, "alpha_curve.png")
    plt.close(fig)

    fig, axes = plt.subplots(1, len(examples), figsize=(2.2 * len(examples), 2.6))
    for ax, (name, img) in zip(np.atleast_1d(axes), examples.items(), strict=True):
        ax.imshow(img.clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "figures" / "example_slice.png", dpi=100)
    ctx.logger.log_figure(fig, "example_slice.png")
    plt.close(fig)
