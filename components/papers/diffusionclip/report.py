"""Reports of an evaluation: results.md (tables beside the paper's claim), results.csv, figures."""

from __future__ import annotations

import math

import pandas as pd
import torch

from components.contract import RunContext
from components.papers.diffusionclip.config import DiffusionCLIPConfig

PAPER_CLAIM = """\
The paper (Kim, Kwon & Ye, CVPR 2022) reports that deterministic DDIM inversion of a pretrained
DDPM reconstructs real images almost perfectly without an encoder or an optimisation, unlike
stochastic forward noising; that fine-tuning the score model with the directional CLIP loss and L1 /
identity losses (official defaults: t0 = 500, n_inv = 40, 6 generation steps while fine-tuning, lr
2e-6..8e-6, 50 images) manipulates faces, churches, bedrooms and dogs toward a text target, preferred
over StyleCLIP and StyleGAN-NADA in its comparisons; and that mixing the original and fine-tuned
noise sets the degree of change (model_ratio) while mixing several fine-tuned models' noise by time
step combines attributes. No number of the paper is quoted here (its tables were not at hand).
Our setting is a 32x32 drawn-face domain with a DDPM and a CLIP trained here in minutes on a CPU:
absolute numbers are not comparable; the relations are, paired over the test images."""


def _fmt(d: float, se: float, z: float) -> str:
    if d != d:
        return "n/a"
    return f"{d:+.3f} +- {se:.3f} ({'beyond' if abs(d) > z * se else 'within'} {z:g} se)"


def _pair(metrics: dict[str, float], key: str, z: float) -> str:
    return _fmt(metrics.get(key, math.nan), metrics.get(f"{key}_se", 0.0), z)


def write_reports(
    ctx: RunContext,
    cfg: DiffusionCLIPConfig,
    metrics: dict[str, float],
    inv: list[dict],
    edits: list[dict],
    mix: list[dict],
    examples: dict[str, torch.Tensor],
    mix_examples: torch.Tensor | None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from components.papers.diffusionclip.evaluate import example_grid, gate

    out = ctx.report_dir
    (out / "figures").mkdir(parents=True, exist_ok=True)
    inv_df, edit_df, mix_df = pd.DataFrame(inv), pd.DataFrame(edits), pd.DataFrame(mix)
    tidy = pd.concat(
        [inv_df.assign(table="inversion"), edit_df.assign(table="manipulation"), mix_df.assign(table="mixing")],
        ignore_index=True,
    )
    tidy.to_csv(out / "results.csv", index=False, float_format="%.4f")
    ctx.logger.log_table(tidy, "results.json")
    z, f = cfg.eval.z, cfg.finetune
    g = gate(metrics)
    md = [
        "# DiffusionCLIP (arXiv 2110.02711): results",
        "",
        f"Command: `paperops run diffusionclip` (scale of params.yaml). {cfg.data.size}x{cfg.data.size} "
        f"{cfg.data.source} test faces never trained on; manipulation at t0 = {f.t0}, n_inv = {f.n_inv}, "
        f"n_gen = {f.n_gen}, fine-tuned with n_train = {f.n_train} steps ({f.mode}), {f.images} latents, "
        f"{f.iterations} passes, lr {f.lr:g} x {f.lr_gamma:g} per pass. MAE and drift on [0, 1]; "
        "d = paired per-image difference +- its standard error. Score = zero-shot probability of the "
        "target text among its classes from the CLIP block (template averaging); judge = probability of "
        "the drawn attribute from a classifier trained on the true labels, which never guided the edit.",
        "",
        f"## Gate: {'PASSED' if g.passed else 'NOT passed'}",
        "",
        f"* reconstruction (t0 {f.t0}, n_inv {f.n_inv}): DDIM MAE {metrics.get('gate/recon_mae', math.nan):.4f} "
        f"(bound {cfg.eval.recon_mae_bound:g}); stochastic - DDIM: {_pair(metrics, 'gate/recon_stoch_minus_ddim', z)}",
    ]
    for t in f.targets:
        k = f"edit/{t.name}"
        md.append(
            f"* {t.name} ({t.source!r} -> {t.target!r}): score {metrics.get(f'{k}/score_in', math.nan):.3f} -> "
            f"{metrics.get(f'{k}/score', math.nan):.3f}, d {_pair(metrics, f'{k}/d_score', z)}; "
            f"drift {metrics.get(f'{k}/drift', math.nan):.3f} (bound {cfg.eval.drift_bound:g}); "
            f"judge {metrics.get(f'{k}/judge_in', math.nan):.3f} -> {metrics.get(f'{k}/judge', math.nan):.3f}, "
            f"d {_pair(metrics, f'{k}/d_judge', z)}"
        )
    if not g.passed:
        md += ["", "Reasons:", "", *[f"* {r}" for r in g.reasons]]
    md += ["", "## Inversion fidelity (original model)", "", inv_df.to_markdown(index=False, floatfmt=".4f"), ""]
    md += [
        "## Manipulation (fine-tuned models; ratio = model_ratio)",
        "",
        edit_df.to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    if len(mix_df):
        md += ["## Mixing the first two fine-tuned models", "", mix_df.to_markdown(index=False, floatfmt=".3f"), ""]
    md += ["## The paper's claim", "", PAPER_CLAIM, ""]
    (out / "results.md").write_text("\n".join(md))

    if len(inv_df):
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for t0, grp in inv_df.groupby("t0"):
            ax.plot(grp.n_inv, grp.ddim_mae, "o-", label=f"DDIM inversion, t0={t0}")
            ax.plot(grp.n_inv, grp.stoch_mae, "x--", label=f"stochastic noising, t0={t0}")
        ax.set_xlabel("n_inv (= n_gen)")
        ax.set_ylabel("reconstruction MAE")
        ax.set_yscale("log")
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(out / "figures" / "inversion.png", dpi=100)
        ctx.logger.log_figure(fig, "inversion.png")
        plt.close(fig)
    panels = dict(examples)
    if mix_examples is not None:
        panels["mixing"] = mix_examples
    for name, rows in panels.items():
        fig, ax = plt.subplots(figsize=(0.9 * rows.shape[1] + 1, 0.9 * rows.shape[0] + 0.6))
        ax.imshow(example_grid(rows), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(
            f"{name}: rows = input, " + ("ratios, stochastic start" if name != "mixing" else "schedule, alphas"),
            fontsize=7,
        )
        fig.tight_layout()
        fig.savefig(out / "figures" / f"examples_{name}.png", dpi=100)
        ctx.logger.log_figure(fig, f"examples_{name}.png")
        plt.close(fig)
