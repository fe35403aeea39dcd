"""results.csv, results.md (our numbers over seeds beside the paper's claims) and the figures."""

from __future__ import annotations

import pandas as pd

from components.blocks.metrics.paired import Estimate
from components.contract import Gate, RunContext
from components.papers.ebclr.config import EBCLRPaperConfig

PAPER_CLAIM = (
    "Kim & Ye (NeurIPS 2022), ResNet-18 on MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100, 200 epochs: EBCLR "
    "reaches the linear-probe accuracy of SimCLR and MoCo v2 in x4 to x20 fewer epochs (on CIFAR-10, EBCLR at "
    "epoch 10 beats MoCo v2 at epoch 100, and at epoch 20 beats SimCLR and MoCo v2 at epoch 100), and EBCLR's "
    "accuracy is nearly the same at batch 16 (30 negatives per positive) as at batch 128 (254), unlike SimCLR's."
)
NAMES = {
    "ebclr": "EBCLR",
    "ebclr_lambda2_0": "EBCLR lambda2=0 (NT-Xent only)",
    "simclr": "SimCLR",
    "moco": "MoCo v2",
    "floor": "its random-init floor",
}


def fmt(e: Estimate) -> str:
    """``0.512 +- 0.034``."""
    return f"{e.mean:.3f} +- {e.half_width:.3f}"


def fmt_diff(e: Estimate) -> str:
    verdict = "beyond noise" if e.beyond_noise else "inside noise"
    return f"{e.mean:+.3f} +- {e.half_width:.3f} ({verdict}; se seeds {e.se_seeds:.3f}, se test {e.se_test:.3f})"


def write_reports(
    ctx: RunContext, df: pd.DataFrame, tables: dict, metrics: dict[str, float], verdict: Gate, cfg: EBCLRPaperConfig
) -> None:
    """Write the tidy table, the markdown report and the figures; log the figures and the table."""
    out, nan = ctx.report_dir, float("nan")
    (out / "figures").mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False, float_format="%.4f")
    ctx.logger.log_table(df, "results.json")
    d, t = cfg.data, cfg.train
    acc = pd.DataFrame(
        [
            {
                "method": NAMES[r["method"]],
                "batch": r["batch_size"],
                "steps": r["steps"],
                "probe (95% CI)": fmt(r["probe"]),
                "random-init floor": fmt(r["floor"]),
                "gain": f"{r['probe'].mean - r['floor'].mean:+.3f}",
                "k-NN": f"{r['knn']:.3f}",
                "k-NN floor": f"{r['knn_floor']:.3f}",
                "train s / run": f"{r['seconds']:.1f}",
            }
            for r in tables["accuracy"]
        ]
    )
    data = (
        f"{d.source} at {d.image_size}x{d.image_size}"
        if d.source != "patches"
        else f"grey {d.patch}x{d.patch} patches of the bundled scikit-image photographs (shrunk x{d.patch_scale}) "
        f"resized to {d.image_size}x{d.image_size}, labelled by photograph, test patches from a held-out strip "
        f"of each photograph" + (", standardised per patch" if d.patch_standardize else "")
    )
    md = [
        "# EBCLR (arXiv 2202.04933): results",
        "",
        f"Data: {data}; {int(metrics.get('test_images', 0))} test images. ResNet-18 width {cfg.model.width} "
        f"(features {8 * cfg.model.width}-d), projection {8 * cfg.model.width} -> {8 * cfg.model.width} -> "
        f"{cfg.model.proj_dim}; seeds {list(t.seeds)}; "
        + (
            f"{t.steps} optimiser steps per run at every batch size (matched steps)"
            if t.steps
            else f"{t.epochs} epochs per run"
        )
        + f"; SGLD {cfg.sgld.iters} steps, buffer {cfg.sgld.buffer_size}, rho {cfg.sgld.rho}; EBCLR Adam lr "
        f"{cfg.ebclr.lr} (batch <= {cfg.ebclr.small_batch}: {cfg.ebclr.lr_small_batch}). Linear probe "
        f"({cfg.eval.probe}) and k-NN (K={cfg.eval.knn_k}) on frozen encoder features; 'floor' = the same encoder "
        "at initialisation. Intervals: 95 %, seeds (Student t) and test set (binomial / paired per image) in "
        "quadrature.",
        "",
        "## Probe accuracy at the final step, mean over seeds",
        "",
        acc.to_markdown(index=False),
        "",
        (
            "Probes without a network, on the same split: "
            f"raw pixels {metrics.get('anchor/pixels_probe_acc', nan):.3f}, "
            f"each image's mean and std alone {metrics.get('anchor/mean_std_probe_acc', nan):.3f}."
        ),
        "",
        "## Paired differences, EBCLR minus X (same seeds, same test images)",
        "",
        "\n".join(
            f"- batch {r['batch_size']}, EBCLR - {NAMES[r['versus']]}: {fmt_diff(r['diff'])}"
            for r in tables["differences"]
        )
        or "- none",
        "",
        "## Batch-size gap (probe at the largest batch minus at the smallest, paired by seed)",
        "",
        "\n".join(
            f"- {NAMES[r['method']]}: b{r['large']} - b{r['small']} = {fmt_diff(r['gap'])}" for r in tables["gaps"]
        )
        or "- one batch size only",
        "",
        "## Steps-to-accuracy (final step / first snapshot where EBCLR's mean reaches the baseline's final mean)",
        "",
        "\n".join(f"- `{k}`: x{v:.2f}" for k, v in sorted(metrics.items()) if k.endswith("_steps_over_ebclr_steps"))
        or "- EBCLR's mean did not reach any baseline's final mean within the budget.",
        "",
        "## The paper's claim",
        "",
        PAPER_CLAIM,
        "",
        "## Gate (at the largest batch, EBCLR above its random-init floor beyond noise; README.md says why)",
        "",
        ("**met**" if verdict.passed else "**not met**: " + "; ".join(verdict.reasons)),
        "",
    ]
    (out / "results.md").write_text("\n".join(md))
    _figures(ctx, df, cfg)


def _figures(ctx: RunContext, df: pd.DataFrame, cfg: EBCLRPaperConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(cfg.train.batch_sizes)
    fig, axes = plt.subplots(2, len(sizes), figsize=(5 * len(sizes), 7), squeeze=False)
    for j, bs in enumerate(sizes):
        for i, col in enumerate(("probe_acc", "knn_acc")):
            ax = axes[i][j]
            for m in cfg.train.methods:
                sub = df[(df.method == m) & (df.batch_size == bs)].groupby("step")[col]
                mean, sd = sub.mean(), sub.std().fillna(0)
                ax.plot(mean.index, mean.values, marker="o", ms=3, label=NAMES[m])
                ax.fill_between(mean.index, mean - sd, mean + sd, alpha=0.15)
            ax.set_title(
                f"batch {bs}: {'linear probe' if col == 'probe_acc' else 'k-NN (K=20)'} (mean +- sd over seeds)"
            )
            ax.set_xlabel("optimiser step")
            ax.set_ylabel("test accuracy")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ctx.report_dir / "figures" / "accuracy_vs_steps.png", dpi=100)
    ctx.logger.log_figure(fig, "accuracy_vs_steps.png")
    plt.close(fig)
