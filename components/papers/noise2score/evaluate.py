"""Evaluation on held-out photographs: seven noise settings, Noise2Score against the classical anchors.

For each setting (``noise.EVAL_SETTINGS``) and each evaluation image (held out by name, never
trained on), noise is added with a fixed seed, then **clipped to [0, 1] and rounded to 8 bits**
(what a saved photograph keeps), and the image is restored by:

* ``gauss``: the best Gaussian filter, its width chosen per image by an oracle (baselines.py);
* ``bm3d``: BM3D / CBM3D given the true level (with a variance-stabilising transform for Poisson
  and Gamma, baselines.py);
* ``n2s``: Noise2Score, the score network of the true family + the closed-form Tweedie denoiser
  with the true level (the paper's non-blind results);
* ``blind``: the served model with nothing given (``predict.denoise(noise="auto")``): family and
  level estimated from the score networks, then the Tweedie denoiser of the estimate;
* ``n2c``: the supervised Noise2Clean network, when trained (``train.baseline_steps > 0``).

Per setting the report gives mean PSNR per method and the **paired** differences over images
(n2s - gauss, n2s - bm3d, blind - gauss) with their standard errors. Family estimation is scored
two ways: the paper's protocol (the power estimated from the network trained on that noise) and
the served model's blind choice among its networks.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import torch

from components.blocks.metrics.image import psnr, ssim
from components.blocks.metrics.paired import mean_se
from components.contract import Gate, RunContext
from components.papers.noise2score import tweedie
from components.papers.noise2score.baselines import best_gaussian_filter, bm3d_denoise
from components.papers.noise2score.config import Noise2ScoreConfig
from components.papers.noise2score.data import load_eval
from components.papers.noise2score.estimate import estimate_family
from components.papers.noise2score.model import load, load_family_nets
from components.papers.noise2score.noise import EVAL_SETTINGS, FAMILIES, add_noise, clip_quantize
from components.papers.noise2score.predict import denoise as served_denoise
from components.papers.noise2score.report import write_reports

METHODS = ("noisy", "gauss", "bm3d", "n2s", "blind", "n2c")
PAIRS = (("n2s", "noisy"), ("n2s", "gauss"), ("n2s", "bm3d"), ("blind", "noisy"), ("blind", "gauss"), ("n2s", "n2c"))
MARGIN_SE = 2.0  # a difference counts when it exceeds this many standard errors


def setting_name(family: str, level: float) -> str:
    return f"{family}_{level:g}"


def _noisy(x: torch.Tensor, family: str, level: float, seed: int) -> torch.Tensor:
    return clip_quantize(add_noise(x, family, level, torch.Generator().manual_seed(seed)))


def _bm3d_job(args: tuple[np.ndarray, str, float]) -> np.ndarray:
    y, family, level = args
    torch.set_num_threads(1)
    return bm3d_denoise(torch.from_numpy(y), family, level).numpy()


def evaluate(cfg: Noise2ScoreConfig, ctx: RunContext) -> dict[str, float]:
    """Evaluate ``models/noise2score`` on ``data/noise2score/eval``; write tables and figures."""
    model = load(ctx.model_dir)
    nets = model.score
    baseline_dir = ctx.model_root / "baseline"
    clean_nets = load_family_nets(baseline_dir)[0] if baseline_dir.is_dir() else None
    images = load_eval(ctx.data_dir)
    eps = cfg.eval.fd_epsilon
    settings = [(f, lv) for f, lv in EVAL_SETTINGS if f in nets.families]
    cases = [(s, i) for s in range(len(settings)) for i in range(len(images))]
    seed = lambda s, i: cfg.seed * 1000 + s * 100 + i  # noqa: E731
    noisy = {(s, i): _noisy(images[i][1], *settings[s], seed(s, i)) for s, i in cases}

    bm3d_out: dict[tuple[int, int], torch.Tensor] = {}
    if cfg.eval.bm3d:  # model-free and the slowest part: two worker processes, one thread each
        jobs = [(noisy[c].numpy(), *settings[c[0]]) for c in cases]
        with ProcessPoolExecutor(max_workers=2) as pool:
            results = pool.map(_bm3d_job, jobs)
            for c, out in zip(cases, ctx.progress(results, total=len(jobs), desc="bm3d"), strict=True):
                bm3d_out[c] = torch.from_numpy(out)

    rows, examples = [], {}
    for s, i in ctx.progress(cases, total=len(cases), desc="evaluate"):
        family, level = settings[s]
        name, x = images[i]
        y = noisy[(s, i)]
        with torch.inference_mode():
            restored = {
                "noisy": y,
                "gauss": best_gaussian_filter(y, x)[0],
                "n2s": tweedie.denoise(y, nets(y, family), family, level),
            }
            if clean_nets is not None:
                restored["n2c"] = y + clean_nets(y, family)  # residual baseline (train.py)
        if (s, i) in bm3d_out:
            restored["bm3d"] = bm3d_out[(s, i)]
        # The paper's protocol: the power from the network trained on this noise family.
        fn = model.score_fn(family, float64=True)
        fam_paper, power = estimate_family(fn, y, eps, torch.Generator().manual_seed(i), cfg.eval.power_method)
        # The served model, told nothing: family chosen among its networks, level estimated.
        served = served_denoise(model, y[0].permute(1, 2, 0).numpy())
        restored["blind"] = torch.from_numpy(served["image"]).permute(2, 0, 1)[None]
        row = {
            "setting": setting_name(family, level),
            "family": family,
            "level": level,
            "image": name,
            "power": power,
            "family_paper": fam_paper,
            "family_blind": served["family"],
            "level_blind": served["level"],
        }
        for method, img in restored.items():
            img = torch.nan_to_num(img.float(), nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1)
            row[f"psnr_{method}"] = psnr(img, x)
            row[f"ssim_{method}"] = ssim(img, x)
            restored[method] = img
        rows.append(row)
        if i == 0:
            examples[setting_name(family, level)] = {"clean": x, **restored}
    per_image = pd.DataFrame(rows)
    summary = summarise(per_image)
    write_reports(ctx, per_image, summary, examples)
    return metrics_from(per_image, summary)


def paired(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """Mean and standard error of the paired difference ``a - b`` (one pair per image)."""
    return mean_se((a - b).to_numpy(dtype=float))


def summarise(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per setting: mean PSNR per method, paired differences with SE, estimation accuracy."""
    out = []
    for setting, g in per_image.groupby("setting", sort=False):
        row = {"setting": setting, "family": g["family"].iloc[0], "level": g["level"].iloc[0], "images": len(g)}
        for m in METHODS:
            if f"psnr_{m}" in g:
                row[f"psnr_{m}"] = float(g[f"psnr_{m}"].mean())
        for a, b in PAIRS:
            if f"psnr_{a}" in g and f"psnr_{b}" in g:
                row[f"{a}-{b}"], row[f"{a}-{b}_se"] = paired(g[f"psnr_{a}"], g[f"psnr_{b}"])
        row["family_paper_acc"] = float((g["family_paper"] == g["family"]).mean())
        row["family_blind_acc"] = float((g["family_blind"] == g["family"]).mean())
        row["power"] = float(g["power"].median())
        out.append(row)
    return pd.DataFrame(out)


def metrics_from(per_image: pd.DataFrame, summary: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in summary.to_dict("records"):
        for key, value in row.items():
            if key not in ("setting", "family", "level") and isinstance(value, (int, float)) and math.isfinite(value):
                out[f"{row['setting']}/{key}"] = float(value)
    for fam in FAMILIES:
        g = per_image[per_image["family"] == fam]
        if len(g):
            out[f"family_paper_acc/{fam}"] = float((g["family_paper"] == fam).mean())
            out[f"family_blind_acc/{fam}"] = float((g["family_blind"] == fam).mean())
            out[f"family_paper_n/{fam}"] = float(len(g))
            out[f"called_gaussian/{fam}"] = float((g["family_paper"] == "gaussian").sum())
    out["family_accuracy"] = float((per_image["family_paper"] == per_image["family"]).mean())
    out["mean_gain_n2s_over_gauss"] = float((per_image["psnr_n2s"] - per_image["psnr_gauss"]).mean())
    return out


# What the gate asks at the default scale (README, "the gate"): the part of the claim that holds here.
GATED_FAMILIES = ("gaussian",)  # families the estimator must recognise (README: which it tells apart)
MIN_FAMILY_ACC = 0.75  # with 18 Gaussian cases, chance (1/3) reaches it with p < 1e-3
MAX_P_GAUSSIAN_VS_REST = 0.01  # Fisher exact test: "called Gaussian" must depend on the noise being Gaussian


def gaussian_vs_rest_p(metrics: dict[str, float]) -> float:
    """One-sided Fisher exact p of the 2x2 table (Gaussian noise or not) x (called Gaussian or not)."""
    from scipy.stats import fisher_exact

    n = {f: int(metrics.get(f"family_paper_n/{f}", 0)) for f in FAMILIES}
    called = {f: int(metrics.get(f"called_gaussian/{f}", 0)) for f in FAMILIES}
    rest_n = n["poisson"] + n["gamma"]
    if not n["gaussian"] or not rest_n:
        return math.nan
    rest_called = called["poisson"] + called["gamma"]
    table = [[called["gaussian"], n["gaussian"] - called["gaussian"]], [rest_called, rest_n - rest_called]]
    return float(fisher_exact(table, alternative="greater")[1])


def gate(metrics: dict[str, float]) -> Gate:
    """Champion iff, in every setting, Noise2Score with the true level improves on the noisy input
    by more than ``MARGIN_SE`` paired standard errors over the held-out images, and the paper's
    estimator recognises each family of ``GATED_FAMILIES`` in ``MIN_FAMILY_ACC`` of its cases and
    tells Gaussian from non-Gaussian noise beyond chance (Fisher exact p < ``MAX_P_GAUSSIAN_VS_REST``,
    so that an estimator calling everything Gaussian fails). Poisson vs Gamma is not asked (README).

    Beating the best Gaussian filter and BM3D is measured and reported (results.md) but not asked:
    at the default CPU scale the score networks do not reach them (README).
    """
    reasons = []
    settings = sorted({k.split("/")[0] for k in metrics if k.endswith("/psnr_noisy")})
    if len(settings) < len(EVAL_SETTINGS):
        reasons.append(f"only {len(settings)} of the {len(EVAL_SETTINGS)} settings were evaluated")
    for s in settings:
        d, se = metrics.get(f"{s}/n2s-noisy", math.nan), metrics.get(f"{s}/n2s-noisy_se", math.nan)
        if not (math.isfinite(d) and math.isfinite(se) and d > MARGIN_SE * se and d > 0):
            reasons.append(f"{s}: Noise2Score - noisy = {d:+.2f} dB, not beyond {MARGIN_SE:g} SE ({se:.2f})")
    for fam in GATED_FAMILIES:
        acc = metrics.get(f"family_paper_acc/{fam}")
        if acc is not None and acc < MIN_FAMILY_ACC:
            reasons.append(f"{fam} noise recognised in {acc:.0%} of its cases (needs {MIN_FAMILY_ACC:.0%})")
    p = gaussian_vs_rest_p(metrics)
    if math.isfinite(p) and not p < MAX_P_GAUSSIAN_VS_REST:
        reasons.append(f"Gaussian vs non-Gaussian noise not told apart beyond chance (Fisher p = {p:.3g})")
    return Gate(passed=not reasons, reasons=tuple(reasons))
