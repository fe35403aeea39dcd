"""Evaluation on held-out volumes: the degraded planes before and after, against the truth.

Test slices: ``eval.slices`` evenly spaced elevational-lateral planes ``vol[:, a, :]`` and as many
elevational-axial planes ``vol[:, :, l]`` of every test volume (never trained on). Per slice:

* degraded: the input itself;
* switchable CycleGAN ``G(x, alpha)`` at every alpha of ``eval.alphas`` (one network);
* CycleGAN: the plain two-generator baseline's enhancing generator G_AB, same architecture;
* Richardson-Lucy (scikit-image ``restoration.richardson_lucy``) with the known PSF, the
  non-learned reference (it is given the blur, which the GANs never see).

Metrics: PSNR and SSIM to the truth (data range 1) and the no-reference elevational sharpness
(paired.elevational_sharpness); differences are paired over slices with their standard errors.
The gate (the issue): at alpha = 1 the degraded planes improve in PSNR beyond noise, and neither
PSNR nor sharpness falls beyond noise along the alpha grid (monotone), with sharpness at alpha = 1
above alpha = 0 beyond noise (the control acts).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from components.blocks.metrics.image import psnr_per_image
from components.contract import Gate, RunContext
from components.papers.switchable_cyclegan.blur import AxisBlur
from components.papers.switchable_cyclegan.config import SwitchableCycleGANConfig
from components.papers.switchable_cyclegan.data import load_test
from components.papers.switchable_cyclegan.model import load
from components.papers.switchable_cyclegan.paired import elevational_sharpness, paired
from components.papers.switchable_cyclegan.predict import enhance_slices


def test_slices(volume: np.ndarray, count: int) -> list[np.ndarray]:
    """Two stacks of ``count`` evenly spaced planes.

    Returns:
        ``[(n, E, L) elevational-lateral, (n, E, A) elevational-axial]``.
    """
    ia = np.unique(np.linspace(0, volume.shape[1] - 1, count).round().astype(int))
    il = np.unique(np.linspace(0, volume.shape[2] - 1, count).round().astype(int))
    return [np.stack([volume[:, a, :] for a in ia]), np.stack([volume[:, :, lat] for lat in il])]


def richardson_lucy(x: torch.Tensor, psf: np.ndarray, iterations: int) -> torch.Tensor:
    """RL deconvolution of every slice ``(n, 1, H, W)`` with the known PSF (scikit-image).

    The slice is reflect-padded along the blurred rows first (the degradation's boundary rule):
    scikit-image convolves with zero padding, which would make RL invent bright borders.
    """
    from skimage.restoration import richardson_lucy as rl

    r = (psf.shape[0] - 1) // 2
    mode: Literal["reflect", "edge"] = (
        "reflect" if x.shape[-2] > r else "edge"
    )  # reflect needs more rows than the PSF radius
    out = [
        rl(np.pad(s[0].double().numpy(), ((r, r), (0, 0)), mode=mode), psf, num_iter=iterations, clip=True)[r:-r]
        for s in x
    ]
    return torch.from_numpy(np.stack(out)[:, None]).float()


def _ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    s = structural_similarity_index_measure(pred.clamp(0, 1), target, data_range=1.0, reduction="none")
    assert isinstance(s, torch.Tensor)  # a tuple only with return_full_image=True
    return s.reshape(-1)


def method_names(cfg: SwitchableCycleGANConfig) -> list[str]:
    return ["degraded", *[f"alpha_{a:g}" for a in cfg.eval.alphas], "cyclegan", "rl"]


def evaluate(cfg: SwitchableCycleGANConfig, ctx: RunContext) -> dict[str, float]:
    """Evaluate ``models/switchable_cyclegan`` on ``data/switchable_cyclegan/test``; write the reports."""
    from components.papers.switchable_cyclegan.report import write_reports

    model = load(ctx.model_dir)
    base_dir = ctx.model_root / "baseline"
    baseline = load(base_dir) if base_dir.is_dir() else None
    psf = AxisBlur(cfg.data.sigma_elevational).psf2d()
    per: dict[str, dict[str, list[np.ndarray]]] = {}
    groups, examples = [], {}
    has_truth = True
    tests = load_test(ctx.data_dir)
    for v, (_name, degraded, truth) in enumerate(ctx.progress(tests, total=len(tests), desc="evaluate")):
        has_truth &= truth is not None
        truths = test_slices(truth, cfg.data.eval_slices) if truth is not None else [None, None]
        for plane, (xs, ys) in enumerate(zip(test_slices(degraded, cfg.data.eval_slices), truths, strict=True)):
            x = torch.from_numpy(xs)[:, None].float()
            y = torch.from_numpy(ys)[:, None].float() if ys is not None else None
            outs = {"degraded": x}
            for a in cfg.eval.alphas:
                outs[f"alpha_{a:g}"] = enhance_slices(model, x, a)
            if baseline is not None:
                outs["cyclegan"] = enhance_slices(baseline, x)
            outs["rl"] = richardson_lucy(x, psf, cfg.eval.rl_iterations)
            for m, img in outs.items():
                rec = per.setdefault(m, {})
                rec.setdefault("sharpness", []).append(elevational_sharpness(img).numpy())
                if y is not None:
                    rec.setdefault("psnr", []).append(psnr_per_image(img, y).numpy())
                    rec.setdefault("ssim", []).append(_ssim(img, y).numpy())
            if y is not None:
                per.setdefault("truth", {}).setdefault("sharpness", []).append(elevational_sharpness(y).numpy())
            groups.append(np.full(len(x), v))
            if v == 0 and plane == 0:
                examples = {m: img[0, 0] for m, img in outs.items()} | ({"truth": y[0, 0]} if y is not None else {})
    g = np.concatenate(groups)
    values = {m: {k: np.concatenate(v) for k, v in rec.items()} for m, rec in per.items()}
    metrics = _metrics(cfg, values, g, has_truth)
    metrics.update(_sizes(model, baseline))
    write_reports(ctx, cfg, values, metrics, examples)
    return metrics


def _sizes(model, baseline) -> dict[str, float]:
    count = lambda nets: float(sum(p.numel() for n in nets.values() for p in n.parameters()))  # noqa: E731
    out = {"params/switchable": count(model.nets)}
    if baseline is not None:
        out["params/cyclegan_one_generator"] = count(baseline.nets)
    return out


def _metrics(cfg: SwitchableCycleGANConfig, values: dict, groups: np.ndarray, has_truth: bool) -> dict[str, float]:
    out: dict[str, float] = {"has_truth": float(has_truth), "slices": float(len(groups))}
    keys = ["sharpness"] + (["psnr", "ssim"] if has_truth else [])
    for m, rec in values.items():
        for k in keys:
            if k in rec:
                out[f"{m}/{k}"] = float(rec[k].mean())
                if m not in ("degraded", "truth"):
                    d = paired(rec[k] - values["degraded"][k], groups)
                    out[f"{m}/d_{k}"], out[f"{m}/d_{k}_se"] = d["mean"], d["se"]
    alphas = [f"alpha_{a:g}" for a in cfg.eval.alphas]
    for ref in ("cyclegan", "rl"):
        if ref in values:
            for k in keys:
                d = paired(values["alpha_1"][k] - values[ref][k], groups)
                out[f"vs_{ref}/d_{k}"], out[f"vs_{ref}/d_{k}_se"] = d["mean"], d["se"]
    for k in keys[:2]:  # monotone in alpha: the worst step of the paired curve, in SE units
        worst = math.inf
        for lo, hi in zip(alphas[:-1], alphas[1:], strict=True):
            d = paired(values[hi][k] - values[lo][k], groups)
            worst = min(worst, d["mean"] / d["se"] if d["se"] > 0 else math.copysign(math.inf, d["mean"]))
        out[f"monotone/{k}_worst_step_z"] = float(np.clip(worst, -1e6, 1e6))
        d = paired(values[alphas[-1]][k] - values[alphas[0]][k], groups)
        out[f"monotone/{k}_range_z"] = float(np.clip(d["mean"] / d["se"] if d["se"] > 0 else 0.0, -1e6, 1e6))
    out["gate/z"] = cfg.eval.z
    return out


def gate(metrics: dict[str, float]) -> Gate:
    """Champion iff alpha = 1 improves PSNR beyond noise and the alpha curve is monotone (see module doc)."""
    z = metrics.get("gate/z", 2.0)
    reasons = []
    if not metrics.get("has_truth", 0.0):
        return Gate(False, ("no clean truth for the test volumes (folder data): the PSNR gate cannot be evaluated",))
    d, se = metrics.get("alpha_1/d_psnr", -math.inf), metrics.get("alpha_1/d_psnr_se", math.inf)
    if not d > z * se:
        reasons.append(f"alpha=1 PSNR gain {d:.3f} dB is not beyond {z:g} SE ({z * se:.3f} dB)")
    for k in ("psnr", "sharpness"):
        w = metrics.get(f"monotone/{k}_worst_step_z", -math.inf)
        if not w > -z:
            reasons.append(f"{k} falls along the alpha grid: worst step {w:.2f} SE (limit -{z:g})")
    r = metrics.get("monotone/sharpness_range_z", 0.0)
    if not r > z:
        reasons.append(f"sharpness at alpha=1 vs alpha=0 is {r:.2f} SE (needs > {z:g}): alpha does not control it")
    return Gate(not reasons, tuple(reasons))
