"""Evaluation: Dice, folding % and time per pair for DiffuseMorph, the VoxelMorph-style baseline,
scikit-image's TV-L1 optical flow and the identity, paired over the test pairs; and Dice / folding
/ mean displacement against eta (the deformation continuum). Writes reports/diffusemorph/results.md.

Dice: MONAI ``compute_dice`` on one-hot labels (2|A n B| / (|A| + |B|), mean over the foreground
classes 1..C-1), the moving labels warped by the flow (bilinear one-hot, argmax).
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from components.blocks.metrics.paired import mean_se
from components.contract import Gate, RunContext
from components.papers.diffusemorph.config import DiffuseMorphConfig
from components.papers.diffusemorph.data import load_split
from components.papers.diffusemorph.model import load, warp
from components.papers.diffusemorph.predict import jacobian_folding, register_tensors


def dice(flow: torch.Tensor, moving_label: torch.Tensor, fixed_label: torch.Tensor, classes: int) -> float:
    """Mean foreground Dice of the warped moving labels against the fixed labels (one pair)."""
    from monai.metrics import compute_dice

    oh = F.one_hot(moving_label, classes).permute(2, 0, 1)[None].float()
    warped = warp(oh, flow[None]).argmax(1)[0]
    a = F.one_hot(warped, classes).permute(2, 0, 1)[None].float()
    b = F.one_hot(fixed_label, classes).permute(2, 0, 1)[None].float()
    return float(compute_dice(a, b, include_background=False).nanmean())


def tvl1_flow(m: np.ndarray, f: np.ndarray) -> np.ndarray:
    """skimage optical_flow_tvl1(reference=F, moving=M): (2, H, W) (rows, cols), M(x + u) ~ F(x)."""
    from skimage.registration import optical_flow_tvl1

    return np.asarray(optical_flow_tvl1(f, m), dtype=np.float32)


def evaluate(cfg: DiffuseMorphConfig, ctx: RunContext) -> dict[str, float]:
    model = load(ctx.model_dir)
    test = load_split(ctx.data_dir, "test")
    classes = int(max(int(test["moving_label"].max()), int(test["fixed_label"].max())) + 1)
    n = len(test["moving"])
    rows: dict[str, dict[str, list[float]]] = {}

    def add(method: str, flow: torch.Tensor, i: int, secs: float) -> None:
        r = rows.setdefault(method, {"dice": [], "folding": [], "seconds": [], "disp": []})
        r["dice"].append(dice(flow, test["moving_label"][i], test["fixed_label"][i], classes))
        r["folding"].append(jacobian_folding(flow.numpy()))
        r["seconds"].append(secs)
        r["disp"].append(float(flow.norm(dim=0).mean()))

    for i in ctx.progress(range(n), total=n, desc="diffusemorph eval"):
        m, f = test["moving"][i : i + 1], test["fixed"][i : i + 1]
        add("identity", torch.zeros(2, *m.shape[-2:]), i, 0.0)
        for method in ("diffusemorph", "voxelmorph"):
            t0 = time.perf_counter()
            _, flow = register_tensors(model, m, f, 1.0, method)
            add(method, flow[0], i, time.perf_counter() - t0)
        for eta in cfg.eval.etas:
            _, flow = register_tensors(model, m, f, float(eta))
            add(f"eta={eta:g}", flow[0], i, 0.0)
        t0 = time.perf_counter()
        u = tvl1_flow(((m[0, 0] + 1) / 2).numpy(), ((f[0, 0] + 1) / 2).numpy())
        add("tvl1", torch.from_numpy(u), i, time.perf_counter() - t0)

    arr = {k: {q: np.asarray(v) for q, v in r.items()} for k, r in rows.items()}
    metrics: dict[str, float] = {}
    for k, r in arr.items():
        for q, v in r.items():
            metrics[f"{k}/{q}"], metrics[f"{k}/{q}_se"] = mean_se(v)
    dm = arr["diffusemorph"]
    for other in ("identity", "voxelmorph", "tvl1"):
        d, se = mean_se(dm["dice"] - arr[other]["dice"])
        metrics[f"gate/dice_minus_{other}"], metrics[f"gate/dice_minus_{other}_se"] = d, se
        d, se = mean_se(dm["folding"] - arr[other]["folding"])
        metrics[f"gate/folding_minus_{other}"], metrics[f"gate/folding_minus_{other}_se"] = d, se
    etas = [f"eta={e:g}" for e in cfg.eval.etas]
    disp = [float(arr[e]["disp"].mean()) for e in etas]
    metrics["gate/eta_disp_monotone"] = float(all(b >= a for a, b in zip(disp, disp[1:], strict=False)))
    metrics["gate/eta_max_folding"] = max(float(arr[e]["folding"].mean()) for e in etas)
    metrics["gate/z"] = cfg.eval.z
    metrics["gate/folding_margin"] = cfg.eval.folding_margin
    _report(ctx, cfg, metrics, list(arr), etas, n)
    return metrics


def gate(metrics: dict[str, float]) -> Gate:
    """Dice above identity beyond noise; Dice vs the baseline within noise or better; folding not
    above the baseline's beyond noise + margin; displacement monotone in eta."""
    z = metrics.get("gate/z", 2.0)
    reasons = []
    d, se = metrics["gate/dice_minus_identity"], metrics["gate/dice_minus_identity_se"]
    if not d > z * se:
        reasons.append(f"Dice - identity = {d:+.4f} +- {se:.4f}: not above identity beyond {z:g} se")
    d, se = metrics["gate/dice_minus_voxelmorph"], metrics["gate/dice_minus_voxelmorph_se"]
    if d < -z * se:
        reasons.append(f"Dice - VoxelMorph-style = {d:+.4f} +- {se:.4f}: worse beyond {z:g} se")
    d, se = metrics["gate/folding_minus_voxelmorph"], metrics["gate/folding_minus_voxelmorph_se"]
    if d > z * se + metrics.get("gate/folding_margin", 0.0):
        reasons.append(f"folding % - VoxelMorph-style = {d:+.3f} +- {se:.3f}: higher beyond noise + margin")
    if metrics["gate/eta_disp_monotone"] < 1:
        reasons.append("mean displacement is not monotone in eta")
    return Gate(not reasons, tuple(reasons))


def _report(
    ctx: RunContext, cfg: DiffuseMorphConfig, metrics: dict[str, float], methods: list[str], etas: list[str], n: int
) -> None:
    out = ctx.report_dir
    out.mkdir(parents=True, exist_ok=True)
    g = gate(metrics)
    md = [
        "# DiffuseMorph (arXiv 2112.05149): results",
        "",
        f"Command: `paperops run diffusemorph`. {n} test pairs ({cfg.data.size}x{cfg.data.size}, "
        "base images never trained on). "
        "Paired differences are DiffuseMorph minus the row, mean +- standard error over the pairs.",
        "",
        f"## Gate: {'PASSED' if g.passed else 'NOT passed'}",
        "",
        *[f"* {r}" for r in g.reasons],
        "",
        "| method | Dice | folding % | s / pair | mean |u| px | Dice: DM - row | folding: DM - row |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in methods:
        dd = (
            f"{metrics[f'gate/dice_minus_{k}']:+.4f} +- {metrics[f'gate/dice_minus_{k}_se']:.4f}"
            if f"gate/dice_minus_{k}" in metrics
            else ""
        )
        df = (
            f"{metrics[f'gate/folding_minus_{k}']:+.3f} +- {metrics[f'gate/folding_minus_{k}_se']:.3f}"
            if f"gate/folding_minus_{k}" in metrics
            else ""
        )
        md.append(
            f"| {k} | {metrics[f'{k}/dice']:.4f} +- {metrics[f'{k}/dice_se']:.4f} | {metrics[f'{k}/folding']:.3f} "
            f"| {metrics[f'{k}/seconds']:.4f} | {metrics[f'{k}/disp']:.3f} | {dd} | {df} |"
        )
    md += [
        "",
        f"Continuum ({', '.join(etas)}): displacement monotone = {bool(metrics['gate/eta_disp_monotone'])}, "
        f"max folding % = {metrics['gate/eta_max_folding']:.3f}",
        "",
    ]
    (out / "results.md").write_text("\n".join(md))
    (out / "results.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
