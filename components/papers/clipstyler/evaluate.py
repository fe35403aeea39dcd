"""Evaluation: the paper's patch-CLIP score for the full loss and its ablations, with content
preservation, paired over (content image, style text) units.

* Patch-CLIP score (the paper's Table 1 measure, "CLIP score" between the text and patches of the
  output; 0.2515 CLIPstyler, 0.2487 AdaIN+CLIP, 0.1982 StyleCLIP with ViT-B/32): the mean cosine
  between E_I of ``eval.score_crops`` random ``style.crop_size`` patches of the output (no
  augmentation; the same patch positions for every method of a unit) and the template-averaged
  E_T(text), with whichever CLIP is loaded (the project's block by default).
* Global CLIP score: the same cosine for the whole output.
* Content preservation: SSIM between the Sobel edge maps of output and content (1 = the same edges),
  and the content-feature distance (the content loss's features).
* ``input``: the content image itself, scored the same way (the anchor: no stylisation).

Each ablation is compared with the full loss by the per-unit paired difference, mean +- standard
error over units (``components.blocks.metrics.paired.mean_se``).

The gate: for every ablation of ``eval.gated`` (default: no_patch, the one whose loss the full loss
beats at this scale; see the README), full minus ablation in patch-CLIP score exceeds ``eval.z``
standard errors, and the full loss's mean edge SSIM is above ``eval.edge_ssim_bound`` (bounded
content loss). The other ablations are measured and reported beside it, not gated.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from components.blocks.metrics.image import ssim
from components.blocks.metrics.paired import mean_se
from components.contract import Gate, RunContext
from components.papers.clipstyler.config import CLIPstylerConfig
from components.papers.clipstyler.data import load_split, names
from components.papers.clipstyler.losses import content_loss, random_patches
from components.papers.clipstyler.style import Styler
from components.papers.clipstyler.train import OUTPUTS, content_net, load_clip, methods, unit_seed


def edges(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the grey image, scaled to [0, 1]: ``(B, 3, H, W) -> (B, 1, H, W)``."""
    g = x.mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3) / 8
    gx = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), kx)
    gy = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), kx.transpose(2, 3))
    return (gx**2 + gy**2).sqrt().clamp(0, 1)


def patch_clip_score(styler: Styler, image: torch.Tensor, text: str, crops: int, size: int, seed: int) -> float:
    """Mean cos(E_I(patch), E_T(text)) over ``crops`` random patches (seeded positions, no augmentation)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        patches = random_patches(image, crops, size, augment=False)
        return float((styler.clip.encode_image(patches) @ styler.text(text)).mean())


def score_unit(
    styler: Styler, cfg: CLIPstylerConfig, out: torch.Tensor, content: torch.Tensor, text: str, seed: int
) -> dict[str, float]:
    with torch.no_grad():
        return {
            "patch_clip": patch_clip_score(styler, out, text, cfg.eval.score_crops, cfg.style.crop_size, seed),
            "clip": float((styler.clip.encode_image(out) @ styler.text(text)).mean()),
            "edge_ssim": ssim(edges(out), edges(content)),
            "content_dist": float(content_loss(styler.content_net(out), styler.content_net(content))),
        }


def evaluate(cfg: CLIPstylerConfig, ctx: RunContext) -> dict[str, float]:
    clip, templates = load_clip(ctx)
    cnet, kind = content_net(cfg, ctx, clip)
    styler = Styler(clip, cnet, templates, cfg.style)
    outputs = load_file(str(ctx.model_root / OUTPUTS))
    contents = load_split(ctx.data_dir, "eval")
    texts, ms = list(cfg.eval.texts), ["input", *methods(cfg)]
    rows: list[dict] = []
    per: dict[str, dict[str, list[float]]] = {m: {} for m in ms}
    for t, text in enumerate(texts):
        for c in range(len(contents)):
            x = contents[c : c + 1].to(ctx.device)
            seed = unit_seed(cfg, t, c) + 7
            for m in ms:
                out = x if m == "input" else outputs[f"{m}/{t}/{c}"][None].to(ctx.device)
                s = score_unit(styler, cfg, out, x, text, seed)
                for k, v in s.items():
                    per[m].setdefault(k, []).append(v)
    metrics: dict[str, float] = {
        "units": float(len(texts) * len(contents)),
        "gate/z": cfg.eval.z,
        "gate/edge_ssim_bound": cfg.eval.edge_ssim_bound,
        **{f"gate/gated/{m}": 1.0 for m in cfg.eval.gated},
    }
    for m in ms:
        for k, values in per[m].items():
            mean, se = mean_se(np.array(values))
            metrics[f"{m}/{k}"], metrics[f"{m}/{k}_se"] = mean, se
        if m != "full":  # d_input: the anchor (how far stylisation moved the score); d_no_*: the ablations
            for k in ("patch_clip", "edge_ssim"):
                d, se = mean_se(np.array(per["full"][k]) - np.array(per[m][k]))
                metrics[f"d_{m}/{k}"], metrics[f"d_{m}/{k}_se"] = d, se
        rows.append(
            {
                "method": m,
                "patch_clip": metrics[f"{m}/patch_clip"],
                "patch_clip_se": metrics[f"{m}/patch_clip_se"],
                "clip": metrics[f"{m}/clip"],
                "edge_ssim": metrics[f"{m}/edge_ssim"],
                "content_dist": metrics[f"{m}/content_dist"],
                "d_full_minus": metrics.get(f"d_{m}/patch_clip", 0.0),
                "d_full_minus_se": metrics.get(f"d_{m}/patch_clip_se", 0.0),
            }
        )
    from components.papers.clipstyler.report import write_reports

    write_reports(ctx, cfg, metrics, rows, outputs, contents, names(ctx.data_dir, "eval"), kind)
    return metrics


def gate(metrics: dict[str, float]) -> Gate:
    """Full loss above every gated ablation (``gate/gated/<m>``) in patch-CLIP score beyond ``z`` SE,
    at bounded content loss (the full loss's edge SSIM above the bound)."""
    z, bound = metrics.get("gate/z", 2.0), metrics.get("gate/edge_ssim_bound", 0.25)
    gated = sorted(k.removeprefix("gate/gated/") for k, v in metrics.items() if k.startswith("gate/gated/") and v)
    reasons = []
    for m in gated:
        key = f"d_{m}/patch_clip"
        d, se = metrics.get(key, math.nan), metrics.get(f"{key}_se", math.nan)
        if not (math.isfinite(se) and d > z * se):
            reasons.append(f"{key} = {d:+.4f} +- {se:.4f}: full not above {m} by {z:g} se")
    if not gated:
        reasons.append("no ablation is gated (eval.gated)")
    ssim_full = metrics.get("full/edge_ssim", math.nan)
    if not ssim_full > bound:
        reasons.append(f"full/edge_ssim = {ssim_full:.3f}: not above {bound:g} (content not preserved)")
    return Gate(not reasons, tuple(reasons))
