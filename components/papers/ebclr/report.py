"""results.csv, results.md (our numbers beside the paper's claims) and the figures of the evaluation."""

from __future__ import annotations

import pandas as pd

from components.contract import Gate, RunContext
from components.papers.ebclr.config import EBCLRPaperConfig

PAPER_CLAIM = (
    "Kim & Ye (NeurIPS 2022), ResNet-18 on MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100, 200 epochs: EBCLR "
    "reaches the accuracy of SimCLR and MoCo v2 in x4 to x20 fewer epochs (on CIFAR-10, EBCLR at epoch 10 beats "
    "MoCo v2 at epoch 100, and at epoch 20 beats SimCLR and MoCo v2 at epoch 100), and EBCLR's accuracy is nearly "
    "the same at batch 16 (30 negatives per positive) as at batch 128 (254), unlike SimCLR's. We quote the claims, "
    "not per-table numbers, which we could not check here."
)


def write_reports(ctx: RunContext, df: pd.DataFrame, metrics: dict[str, float], verdict: Gate,
                  cfg: EBCLRPaperConfig) -> None:
    """Write the tidy table, the markdown report and the figures; log the figures and the table."""
    out = ctx.report_dir
    (out / "figures").mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False, float_format="%.4f")
    ctx.logger.log_table(df, "results.json")
    epochs = cfg.train.epochs
    final = df[df.epoch == epochs].copy()
    floor = df[df.epoch == 0][["method", "batch_size", "probe_acc", "knn_acc"]].rename(
        columns={"probe_acc": "random_probe_acc", "knn_acc": "random_knn_acc"})
    final = final.merge(floor, on=["method", "batch_size"])
    final["epoch_seconds"] = [metrics.get(f"{m}_b{b}/epoch_seconds", float("nan"))
                              for m, b in zip(final.method, final.batch_size, strict=True)]
    final["probe_gain"] = final["probe_acc"] - final["random_probe_acc"]  # what training added to the encoder
    cols = ["method", "batch_size", "probe_acc", "knn_acc", "random_probe_acc", "random_knn_acc", "probe_gain",
            "epoch_seconds"]
    ratios = {k: v for k, v in metrics.items() if "_over_ebclr_epochs_" in k}
    gaps = {k: v for k, v in metrics.items() if "/batch_gap_" in k}
    md = [
        "# EBCLR (arXiv 2202.04933): results",
        "",
        f"Data: {cfg.data.source} at {cfg.data.image_size}x{cfg.data.image_size}; ResNet-18 width {cfg.model.width} "
        f"(features {8 * cfg.model.width}-d), projection {8 * cfg.model.width} -> {8 * cfg.model.width} -> "
        f"{cfg.model.proj_dim}; {epochs} epochs per method and batch size; SGLD {cfg.sgld.iters} steps, buffer "
        f"{cfg.sgld.buffer_size}, rho {cfg.sgld.rho}; MoCo queue {cfg.moco.queue_size}, key momentum "
        f"{cfg.moco.key_momentum}. Accuracy on the held-out test split: linear probe ({cfg.eval.probe}) and "
        f"k-NN (K={cfg.eval.knn_k}) on frozen encoder features; 'random' = the same encoder at initialisation.",
        "",
        f"## Accuracy after {epochs} epochs",
        "",
        final[cols].to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Epochs-to-accuracy (baseline epochs to its own final accuracy / EBCLR epochs to that accuracy)",
        "",
        "\n".join(f"- `{k}`: x{v:.2f}" for k, v in sorted(ratios.items())) or "- EBCLR did not reach any baseline's final accuracy within the budget.",
        "",
        "The paper: x4 to x20. Our ratio is bounded above by the epoch budget, and is undefined (left out) where "
        "EBCLR never reaches the baseline's accuracy.",
        "",
        "## Batch-size gap (accuracy at the largest batch minus at the smallest)",
        "",
        "\n".join(f"- `{k}`: {v:+.3f}" for k, v in sorted(gaps.items())) or "- one batch size only",
        "",
        "## The paper's claim",
        "",
        PAPER_CLAIM,
        "",
        "## Gate (EBCLR probe accuracy above the random floor and every baseline, at every batch size)",
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

    sizes = sorted(df.batch_size.unique())
    fig, axes = plt.subplots(2, len(sizes), figsize=(5 * len(sizes), 7), squeeze=False)
    for j, bs in enumerate(sizes):
        for i, col in enumerate(("probe_acc", "knn_acc")):
            ax = axes[i][j]
            for m in cfg.train.methods:
                sub = df[(df.method == m) & (df.batch_size == bs)]
                ax.plot(sub.epoch, sub[col], marker="o", ms=3, label=m)
            rnd = df[(df.batch_size == bs) & (df.epoch == 0) & (df.method == cfg.train.methods[0])][col]
            if len(rnd):
                ax.axhline(float(rnd.iloc[0]), color="grey", ls="--", lw=1, label="EBCLR encoder at init")
            ax.set_title(f"batch {bs}: {'linear probe' if col == 'probe_acc' else 'k-NN (K=20)'}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("test accuracy")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ctx.report_dir / "figures" / "accuracy_vs_epochs.png", dpi=100)
    ctx.logger.log_figure(fig, "accuracy_vs_epochs.png")
    plt.close(fig)

    secs = df[df.epoch > 0].groupby(["method", "batch_size"]).epoch_seconds.mean().unstack()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    secs.plot.bar(ax=ax)
    ax.set_ylabel("seconds per epoch")
    ax.set_title("wall-clock per training epoch (SGLD costs extra passes)")
    fig.tight_layout()
    fig.savefig(ctx.report_dir / "figures" / "epoch_seconds.png", dpi=100)
    ctx.logger.log_figure(fig, "epoch_seconds.png")
    plt.close(fig)
