"""Reports of an evaluation: results.md (the table beside the paper's numbers), results.csv, a figure."""

from __future__ import annotations

import pandas as pd
import torch

from components.contract import RunContext
from components.papers.clipstyler.config import CLIPstylerConfig

PAPER = """\
The paper (Kwon & Ye, CVPR 2022, Table 1) reports the patch-CLIP score (CLIP similarity between the
style text and patches of the output, ViT-B/32): 0.2515 for CLIPstyler, 0.2487 for AdaIN + CLIP,
0.1982 for StyleCLIP; its ablations (Fig. 7) show that without the patch loss the texture is weak,
without threshold rejection patches are over-stylised, and without augmentation the result is
noisy. Here the same score is measured with the CLIP that is loaded (the project's small CLIP block
by default: absolute values are not comparable to the paper's), for the full loss and the ablations,
paired over (content image, style text) units."""


def write_reports(
    ctx: RunContext,
    cfg: CLIPstylerConfig,
    metrics: dict[str, float],
    rows: list[dict],
    outputs: dict[str, torch.Tensor],
    contents: torch.Tensor,
    content_names: list[str],
    kind: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from components.papers.clipstyler.evaluate import gate

    out = ctx.report_dir
    (out / "figures").mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(out / "results.csv", index=False, float_format="%.4f")
    ctx.logger.log_table(df, "results.json")
    z = cfg.eval.z
    lines = [
        "# CLIPstyler (arXiv 2112.00374): results",
        "",
        PAPER,
        "",
        f"Setting: variant `{cfg.variant}`, {len(contents)} content images ({', '.join(content_names)}) at "
        f"{cfg.data.size}x{cfg.data.size}, texts {', '.join(repr(t) for t in cfg.eval.texts)}; "
        f"{cfg.style.iterations} iterations, {cfg.style.num_crops} crops of {cfg.style.crop_size} px; "
        f"content features: {'VGG19 conv4_2 + conv5_2' if kind == 'vgg' else 'CLIP block ViT tokens (substitute)'}.",
        "",
        "| method | patch-CLIP | global CLIP | edge SSIM | content distance | full minus method (patch-CLIP) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = "" if r["method"] == "full" else f"{r['d_full_minus']:+.4f} +- {r['d_full_minus_se']:.4f}"
        if r["method"] != "full":
            d_, se_ = r["d_full_minus"], r["d_full_minus_se"]
            d += (
                " (full above, beyond noise)"
                if d_ > z * se_
                else " (full below, beyond noise)"
                if d_ < -z * se_
                else " (within noise)"
            )
            d += " **gated**" if r["method"] in cfg.eval.gated else ""
        lines.append(
            f"| {r['method']} | {r['patch_clip']:.4f} +- {r['patch_clip_se']:.4f} | {r['clip']:.4f} | "
            f"{r['edge_ssim']:.3f} | {r['content_dist']:.4f} | {d} |"
        )
    g = gate(metrics)
    lines += [
        "",
        f"Gate ({z:g} standard errors; full edge SSIM > {cfg.eval.edge_ssim_bound:g}): "
        + ("**passed**" if g.passed else "**failed**: " + "; ".join(g.reasons)),
    ]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    # figure: the first content of every text, input and each method
    ms = [r["method"] for r in rows]
    fig, axes = plt.subplots(
        len(cfg.eval.texts), len(ms), figsize=(1.6 * len(ms), 1.7 * len(cfg.eval.texts)), squeeze=False
    )
    for t, text in enumerate(cfg.eval.texts):
        for j, m in enumerate(ms):
            img = contents[0] if m == "input" else outputs[f"{m}/{t}/0"]
            axes[t][j].imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
            axes[t][j].set_axis_off()
            axes[t][j].set_title(m if t == 0 else "", fontsize=7)
        axes[t][0].set_ylabel(text, fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "figures" / "examples.png", dpi=100)
    ctx.logger.log_figure(fig, "examples.png")
    plt.close(fig)
