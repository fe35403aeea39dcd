"""``reports/blocks/clip/results.md``: the zero-shot accuracies of the built text-image model."""

from __future__ import annotations

from components.blocks.clip.config import ClipConfig
from components.contract import RunContext

ROWS = (
    ("held_out/pair", "held-out (colour, shape) pairs, among all colour x shape phrases"),
    ("held_out/colour", "held-out pairs: colour alone"),
    ("held_out/shape", "held-out pairs: shape alone"),
    ("seen/pair", "seen (colour, shape) pairs, fresh images"),
    ("seen/shape", "seen pairs: shape alone"),
    ("faces/pair", "faces, among all mood x colour phrases"),
    ("faces/mood", "faces: smiling vs frowning"),
)


def write_report(ctx: RunContext, cfg: ClipConfig, metrics: dict[str, float]) -> None:
    """Write the table (accuracy +- binomial SE beside chance; beyond 2 SE of chance or not)."""
    lines = [
        "# Text-image block (CLIP) built for the CLIP papers",
        "",
        f"Source: **{cfg.source}**"
        + (
            f" (`{cfg.pretrained.path}`, arch {cfg.pretrained.arch})"
            if cfg.source == "pretrained"
            else f" (a ViT CLIP of width {cfg.model.vision_width} x {cfg.model.vision_layers} layers, patch "
            f"{cfg.model.patch_size} at {cfg.model.image_size} px, trained {cfg.train.steps} steps of "
            f"{cfg.train.batch_size} generated drawings)"
        )
        + ".",
        "",
        f"Learnt logit scale exp(t) = {metrics.get('logit_scale', float('nan')):.1f}.",
        "",
        "Zero-shot classification with prompt ensembling over the caption templates (CLIP Sec. 3.1.4).",
        f"Held-out pairs (never drawn in training): {', '.join(f'{c} {s}' for c, s in cfg.data.held_out)}.",
        "",
        "| test | images | accuracy | chance | beyond chance (2 SE) |",
        "|---|---|---|---|---|",
    ]
    for key, text in ROWS:
        if f"{key}/acc" not in metrics:
            continue
        acc, se, chance = metrics[f"{key}/acc"], metrics[f"{key}/acc_se"], metrics[f"{key}/chance"]
        beyond = "yes" if acc - 2 * se > chance else "no"
        lines.append(f"| {text} | {metrics[f'{key}/n']:.0f} | {acc:.3f} +- {se:.3f} | {chance:.3f} | {beyond} |")
    ctx.report_dir.mkdir(parents=True, exist_ok=True)
    (ctx.report_dir / "results.md").write_text("\n".join(lines) + "\n")
