"""Evaluation on held-out images: the paper's six noise settings, known and blind.

For each setting and each evaluation image (never trained on), noise is added with a fixed seed and
the image is restored three ways:

* Noise2Score: the score network trained on that family's noisy images + the closed-form
  Tweedie denoiser with the true level;
* blind: the same network, with the family and level estimated from its score (estimate.py),
  then the Tweedie denoiser of the estimate (the paper's noise-model estimation experiment);
* Noise2Clean: the same U-Net trained supervised on (noisy, clean) pairs, the upper bound.

Metrics are PSNR / SSIM (torchmetrics, data range 1) averaged over images, the fraction of images
whose family is estimated right and the mean relative error of the estimated level.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch

from components.blocks.metrics.image import psnr, ssim
from components.contract import Gate, RunContext
from components.papers.noise2score import tweedie
from components.papers.noise2score.config import Noise2ScoreConfig
from components.papers.noise2score.data import load_eval
from components.papers.noise2score.estimate import estimate_family, estimate_level
from components.papers.noise2score.model import load, load_family_nets
from components.papers.noise2score.noise import EVAL_SETTINGS, add_noise

METHODS = ("noisy", "n2s", "blind", "n2c")
PAPER_CLAIM = (
    "The paper (its result tables on CBSD68 and Kodak, full-size U-Net trained on DIV2K + CBSD400) reports that "
    "Noise2Score-Tweedie beats the other self-supervised methods in every setting, comes within about "
    "0.1-0.5 dB of the supervised Noise2Clean network, and that the noise model is estimated correctly "
    "with its level close to the truth. We did not find the per-setting numbers in a form we could "
    "verify here, so the comparison below is qualitative: the same ordering, noisy < Noise2Score <= "
    "Noise2Clean, and the estimation accuracy."
)


def setting_name(family: str, level: float) -> str:
    return f"{family}_{level:g}"


def evaluate(cfg: Noise2ScoreConfig, ctx: RunContext) -> dict[str, float]:
    """Evaluate ``models/noise2score`` on ``data/noise2score/eval``; write tables and figures."""
    model = load(ctx.model_dir)
    score_nets = model.score
    baseline_dir = ctx.model_root / "baseline"
    clean_nets = load_family_nets(baseline_dir)[0] if baseline_dir.is_dir() else None
    images = load_eval(ctx.data_dir)
    eps = cfg.eval.fd_epsilon
    settings = [(f, lv) for f, lv in EVAL_SETTINGS if f in score_nets.families]
    rows, examples = [], {}
    for s_idx, (family, level) in enumerate(ctx.progress(settings, total=len(settings), desc="evaluate")):
        acc: dict[str, list[float]] = {}
        for i_idx, (name, x) in enumerate(images):
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + s_idx * 100 + i_idx)
            y = add_noise(x, family, level, gen)
            with torch.inference_mode():
                restored = {"noisy": y, "n2s": tweedie.denoise(y, score_nets(y, family), family, level)}
                if clean_nets is not None:
                    restored["n2c"] = y + clean_nets(y, family)  # residual baseline (train.py)

            fn = model.score_fn(family, float64=True)  # the estimator's finite differences need float64
            fam_hat, p = estimate_family(fn, y, eps, torch.Generator().manual_seed(i_idx), cfg.eval.power_method)
            lvl_hat = estimate_level(fn, y, fam_hat, eps, torch.Generator().manual_seed(i_idx))
            acc.setdefault("power", []).append(p)
            acc.setdefault("family_correct", []).append(float(fam_hat == family))
            if fam_hat == family and math.isfinite(lvl_hat):
                acc.setdefault("level_rel_error", []).append(abs(lvl_hat - level) / level)
            if math.isfinite(lvl_hat) and lvl_hat > 0:
                with torch.inference_mode():
                    restored["blind"] = tweedie.denoise(y, score_nets(y, fam_hat), fam_hat, lvl_hat)
            else:
                restored["blind"] = y
            for method, img in restored.items():
                img = torch.nan_to_num(img.float(), nan=0.0, posinf=1.0, neginf=0.0)
                acc.setdefault(f"psnr_{method}", []).append(psnr(img, x))
                acc.setdefault(f"ssim_{method}", []).append(ssim(img, x))
            if i_idx == 0:
                examples[setting_name(family, level)] = {"clean": x, **restored}
        row = {"setting": setting_name(family, level), "family": family, "level": level}
        row.update({k: sum(v) / len(v) for k, v in acc.items() if v})
        row.setdefault("level_rel_error", float("nan"))
        rows.append(row)
    df = pd.DataFrame(rows)
    _write_reports(ctx, df, examples)
    return _metrics(df)


def _metrics(df: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in df.to_dict("records"):
        for key, value in row.items():
            if key not in ("setting", "family", "level") and isinstance(value, float) and math.isfinite(value):
                out[f"{row['setting']}/{key}"] = value
    out["family_accuracy"] = float(df["family_correct"].mean())
    out["mean_psnr_gain_n2s"] = float((df["psnr_n2s"] - df["psnr_noisy"]).mean())
    return out


def gate(metrics: dict[str, float]) -> Gate:
    """Champion iff Noise2Score beats the noisy input in every setting and the family is mostly right."""
    reasons = []
    settings = sorted({k.split("/")[0] for k in metrics if k.endswith("/psnr_noisy")})
    if len(settings) < 6:
        reasons.append(f"only {len(settings)} of the 6 paper settings were evaluated")
    for s in settings:
        if not metrics.get(f"{s}/psnr_n2s", -math.inf) > metrics[f"{s}/psnr_noisy"]:
            reasons.append(f"{s}: denoised PSNR {metrics.get(f'{s}/psnr_n2s', float('nan')):.2f} <= noisy {metrics[f'{s}/psnr_noisy']:.2f} dB")
    if not metrics.get("family_accuracy", 0.0) > 0.5:
        reasons.append(f"noise family estimated right in {metrics.get('family_accuracy', 0.0):.0%} of cases (needs > 50%)")
    return Gate(passed=not reasons, reasons=tuple(reasons))


def _write_reports(ctx: RunContext, df: pd.DataFrame, examples: dict[str, dict[str, torch.Tensor]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = ctx.report_dir
    (out / "figures").mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False, float_format="%.4f")
    cols = ["setting"] + [c for c in ("psnr_noisy", "psnr_n2s", "psnr_blind", "psnr_n2c", "ssim_noisy", "ssim_n2s",
                                        "ssim_n2c", "family_correct", "level_rel_error", "power") if c in df]
    md = [
        "# Noise2Score-Tweedie (arXiv 2112.03696): results",
        "",
        "Ours: scaled-down U-Net and data (images bundled with scikit-image unless `data.path` is set), "
        "mean over the held-out evaluation images. PSNR in dB.",
        "",
        df[cols].to_markdown(index=False, floatfmt=".3f"),
        "",
        "## The paper's claim",
        "",
        PAPER_CLAIM,
        "",
    ]
    (out / "results.md").write_text("\n".join(md))
    ctx.logger.log_table(df, "results.json")

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.2
    for j, method in enumerate(m for m in METHODS if f"psnr_{m}" in df):
        ax.bar([i + j * width for i in range(len(df))], df[f"psnr_{method}"], width, label=method)
    ax.set_xticks([i + 1.5 * width for i in range(len(df))], df["setting"], rotation=20)
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Noise2Score vs noisy input and Noise2Clean, per setting")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "figures" / "psnr_by_setting.png", dpi=100)
    ctx.logger.log_figure(fig, "psnr_by_setting.png")
    plt.close(fig)

    for name, imgs in examples.items():
        fig, axes = plt.subplots(1, len(imgs), figsize=(3 * len(imgs), 3.2))
        for ax, (label, img) in zip(axes, imgs.items(), strict=True):
            ax.imshow(img[0].permute(1, 2, 0).float().clamp(0, 1).numpy())
            ax.set_title(label if label == "clean" else f"{label} {psnr(img.float(), imgs['clean']):.1f} dB", fontsize=9)
            ax.axis("off")
        fig.suptitle(name)
        fig.tight_layout()
        fig.savefig(Path(out / "figures" / f"{name}.png"), dpi=100)
        ctx.logger.log_figure(fig, f"{name}.png")
        plt.close(fig)
