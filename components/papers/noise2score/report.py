"""``reports/noise2score/``: results.md, per-image and per-setting tables, figures (and MLflow copies)."""

from __future__ import annotations

import pandas as pd

from components.blocks.metrics.image import psnr
from components.contract import RunContext

LABELS = {
    "noisy": "noisy",
    "gauss": "best Gaussian filter (oracle width)",
    "bm3d": "BM3D (true level)",
    "n2s": "Noise2Score (true level)",
    "blind": "Noise2Score blind (served)",
    "n2c": "Noise2Clean (supervised)",
}
PAPER_NUMBERS = (
    "The paper (Kim, Kwon & Ye, CVPR 2022, arXiv 2112.03696) trains the full U-Net on DIV2K + CBSD400 and "
    "reports, on CBSD68 and Kodak, that Noise2Score-Tweedie is within a few tenths of a dB of the supervised "
    "Noise2Clean network in every setting, above the other self-supervised methods, and that its noise-model "
    "estimation picks the right family. We could not read the per-setting table values offline, so they "
    "are not copied here; the official repository's image/table.PNG holds the NeurIPS'21 table."
)


def _fmt(d: float, se: float) -> str:
    return f"{d:+.2f} ± {se:.2f}"


def markdown(summary: pd.DataFrame, per_image: pd.DataFrame, gate_lines: list[str] | None = None) -> str:
    methods = [m for m in LABELS if f"psnr_{m}" in summary]
    head = ["setting", *[LABELS[m] for m in methods]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.to_dict("records"):
        lines.append("| " + " | ".join([r["setting"], *[f"{r[f'psnr_{m}']:.2f}" for m in methods]]) + " |")
    pairs = [c for c in summary.columns if "-" in c and not c.endswith(("_se", "_n"))]
    dl = [
        "| setting | " + " | ".join(pairs) + " | family right (blind) | level (blind, median) |",
        "|" + "---|" * (len(pairs) + 3),
    ]
    for r in summary.to_dict("records"):
        cells = [
            _fmt(r[p], r[f"{p}_se"]) + ("" if r[f"{p}_n"] == r["images"] else f" (n={r[f'{p}_n']:.0f})")
            if pd.notna(r.get(p))
            else ""
            for p in pairs
        ]
        dl.append(
            f"| {r['setting']} | "
            + " | ".join(cells)
            + f" | {r['family_blind_acc']:.0%} | {r['level_blind_median']:.3g} |"
        )
    conf_b = pd.crosstab(per_image["family"], per_image["family_blind"]).to_markdown()
    md = [
        "# Noise2Score-Tweedie (arXiv 2112.03696): results",
        "",
        f"Held-out photographs ({', '.join(sorted(per_image['image'].unique()))}; never trained on), "
        "noise added with fixed seeds, then clipped to [0, 1] and rounded to 8 bits. PSNR in dB, mean over "
        "the images.",
        "",
        "## PSNR per setting",
        "",
        *lines,
        "",
        *(
            [
                f"BM3D ran on {', '.join(sorted(per_image.loc[per_image['psnr_bm3d'].notna(), 'image'].unique()))} "
                "only: its column is the mean over those; compare it through the paired differences below.",
                "",
            ]
            if "psnr_bm3d" in per_image and per_image["psnr_bm3d"].isna().any()
            else []
        ),
        "## Paired differences (dB, mean ± standard error over images)",
        "",
        "A difference counts only beyond 2 standard errors. BM3D may run on a subset of the images "
        "(`eval.bm3d_names`); its differences are paired over that subset (n given when smaller).",
        "",
        *dl,
        "",
        "## Noise-family estimation",
        "",
        "Rows: true family; columns: the served model's blind choice (the Tweedie variance function fitted to "
        "the residual y - D(y), variance.py):",
        "",
        conf_b,
        "",
    ]
    if gate_lines is not None:
        md += ["## Gate", "", *gate_lines, ""]
    md += ["## The paper", "", PAPER_NUMBERS, ""]
    return "\n".join(md)


def write_reports(ctx: RunContext, per_image: pd.DataFrame, summary: pd.DataFrame, examples: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from components.papers.noise2score.evaluate import gate, metrics_from

    out = ctx.report_dir
    (out / "figures").mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "results.csv", index=False, float_format="%.4f")
    verdict = gate(metrics_from(per_image, summary))
    gate_lines = ["passed" if verdict.passed else "not passed:", *[f"- {r}" for r in verdict.reasons]]
    (out / "results.md").write_text(markdown(summary, per_image, gate_lines))
    ctx.logger.log_table(summary, "results.json")
    ctx.logger.log_table(per_image, "per_image.json")

    methods = [m for m in LABELS if f"psnr_{m}" in summary]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        ax.bar([i + j * width for i in range(len(summary))], summary[f"psnr_{m}"], width, label=LABELS[m])
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(summary))], summary["setting"], rotation=20)
    ax.set_ylabel("PSNR (dB)")
    ax.set_ylim(bottom=max(0.0, float(summary["psnr_noisy"].min()) - 3))
    ax.set_title("Held-out photographs, clipped 8-bit noise")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "figures" / "psnr_by_setting.png", dpi=100)
    ctx.logger.log_figure(fig, "psnr_by_setting.png")
    plt.close(fig)

    for name, imgs in examples.items():
        fig, axes = plt.subplots(1, len(imgs), figsize=(2.6 * len(imgs), 2.9))
        for ax, (label, img) in zip(axes, imgs.items(), strict=True):
            ax.imshow(img[0].permute(1, 2, 0).float().clamp(0, 1).numpy())
            title = label if label == "clean" else f"{label} {psnr(img.float(), imgs['clean']):.1f} dB"
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        fig.suptitle(name)
        fig.tight_layout()
        fig.savefig(out / "figures" / f"{name}.png", dpi=90)
        ctx.logger.log_figure(fig, f"{name}.png")
        plt.close(fig)
