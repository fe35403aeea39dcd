"""Evaluation: Dice, folding % and time per pair for DiffuseMorph, the VoxelMorph-style baseline,
scikit-image's TV-L1 optical flow and the identity, paired over the test pairs; and Dice / folding
/ mean displacement against eta (the deformation continuum). Writes reports/diffusemorph/results.md.

Dice: MONAI ``compute_dice`` on one-hot labels (2|A n B| / (|A| + |B|), mean over the foreground
classes 1..C-1 present in either map), the moving labels warped by the flow (linear one-hot, argmax). Folding:
% of pixels with det(I + grad u) <= 0 (predict.jacobian_folding; the official code has no such
metric). Time: CPU seconds of one registration (``time.process_time``, a shared machine's other
load does not count), after one warm-up pair.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from components.blocks.metrics.paired import mean_se
from components.contract import Gate, RunContext
from components.papers.diffusemorph.config import DiffuseMorphConfig
from components.papers.diffusemorph.data import load_split, one_hot
from components.papers.diffusemorph.model import DiffuseMorphModel, load, warp
from components.papers.diffusemorph.predict import jacobian_folding, register_tensors
from components.papers.diffusemorph.report import write_report


def dice(flow: torch.Tensor, moving_label: torch.Tensor, fixed_label: torch.Tensor, classes: int) -> float:
    """Mean foreground Dice of the moving labels warped by ``flow (nd, *S)`` against the fixed labels."""
    from monai.metrics import compute_dice

    warped = warp(one_hot(moving_label, classes), flow[None]).argmax(1)[0]
    a, b = one_hot(warped, classes), one_hot(fixed_label, classes)  # (1, C, *S)
    per_class = compute_dice(a, b, include_background=False, ignore_empty=False)[0]  # (C - 1,)
    present = (a + b).flatten(2).sum(-1)[0, 1:] > 0  # a class in neither map does not count
    return float(per_class[present].mean()) if bool(present.any()) else float("nan")


def tvl1_flow(m: np.ndarray, f: np.ndarray) -> np.ndarray:
    """skimage optical_flow_tvl1(reference=F, moving=M): (nd, *S), M(x + u) ~ F(x) (2-D or 3-D)."""
    from skimage.registration import optical_flow_tvl1

    return np.asarray(optical_flow_tvl1(f, m), dtype=np.float32)


METHODS = ("identity", "diffusemorph", "voxelmorph", "tvl1")


def eta_key(eta: float) -> str:
    """The metric prefix of one eta of the continuum (MLflow names allow no '=')."""
    return f"eta_{eta:g}"


def _flow(model: DiffuseMorphModel, m: torch.Tensor, f: torch.Tensor, method: str) -> torch.Tensor:
    return register_tensors(model, m, f, 1.0, method)[1][0]


def _tvl1(m: np.ndarray, f: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(tvl1_flow(m, f))


def _cpu_seconds(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def evaluate(cfg: DiffuseMorphConfig, ctx: RunContext) -> dict[str, float]:
    """Register every test pair with every method; paired statistics; write the report."""
    model = load(ctx.model_dir)
    test = load_split(ctx.data_dir, "test")
    classes = int(max(int(test["moving_label"].max()), int(test["fixed_label"].max())) + 1)
    n = len(test["moving"])
    rows: dict[str, dict[str, list[float]]] = {}
    examples: dict[str, torch.Tensor] = {}

    def add(method: str, flow: torch.Tensor, i: int, secs: float) -> None:
        r = rows.setdefault(method, {"dice": [], "folding": [], "seconds": [], "disp": []})
        r["dice"].append(dice(flow, test["moving_label"][i], test["fixed_label"][i], classes))
        r["folding"].append(jacobian_folding(flow.numpy()))
        r["seconds"].append(secs)
        r["disp"].append(float(flow.norm(dim=0).mean()))
        if i == 0:
            examples[method] = flow

    m0, f0 = test["moving"][:1], test["fixed"][:1]
    register_tensors(model, m0, f0)  # warm-up: the first call pays one-off allocations
    for i in ctx.progress(range(n), total=n, desc="diffusemorph eval"):
        m, f = test["moving"][i : i + 1], test["fixed"][i : i + 1]
        add("identity", torch.zeros(m.dim() - 2, *m.shape[2:]), i, 0.0)
        for method in ("diffusemorph", "voxelmorph"):
            flow, secs = _cpu_seconds(partial(_flow, model, m, f, method))
            add(method, flow, i, secs)
        for eta in cfg.eval.etas:
            add(eta_key(eta), register_tensors(model, m, f, float(eta))[1][0], i, 0.0)
        mm, ff = ((m[0, 0] + 1) / 2).numpy(), ((f[0, 0] + 1) / 2).numpy()
        u, secs = _cpu_seconds(partial(_tvl1, mm, ff))
        add("tvl1", u, i, secs)

    arr = {k: {q: np.asarray(v) for q, v in r.items()} for k, r in rows.items()}
    metrics: dict[str, float] = {}
    for k, r in arr.items():
        for q, v in r.items():
            metrics[f"{k}/{q}"], metrics[f"{k}/{q}_se"] = mean_se(v)
    dm = arr["diffusemorph"]
    for other in ("identity", "voxelmorph", "tvl1"):
        for q in ("dice", "folding"):
            d, se = mean_se(dm[q] - arr[other][q])
            metrics[f"gate/{q}_minus_{other}"], metrics[f"gate/{q}_minus_{other}_se"] = d, se
    etas = [eta_key(e) for e in cfg.eval.etas]
    disp = [float(arr[e]["disp"].mean()) for e in etas]
    steps = np.diff(disp)
    gain, gain_se = mean_se(arr[etas[-1]]["disp"] - arr[etas[0]]["disp"])
    metrics["gate/eta_disp_gain"], metrics["gate/eta_disp_gain_se"] = gain, gain_se
    metrics["gate/eta_disp_monotone"] = float(bool((steps >= 0).all()))
    # smoothness: the largest share of the eta_0 -> eta_1 change made in one step (1 / (K - 1) when linear)
    metrics["gate/eta_disp_max_step_share"] = float(steps.max() / gain) if gain > 0 else 1.0
    metrics["gate/eta_max_folding"] = max(float(arr[e]["folding"].mean()) for e in etas)
    metrics["gate/z"] = cfg.eval.z
    metrics["gate/folding_margin"] = cfg.eval.folding_margin
    metrics["gate/max_step_share"] = cfg.eval.max_step_share
    metrics["gate/dice_vs_baseline_gated"] = float(cfg.eval.gate_dice_vs_baseline)
    metrics["test_pairs"] = float(n)
    write_report(ctx, cfg, metrics, [*METHODS, *etas], test, examples, gate(metrics))
    return metrics


def dice_holds_vs_baseline(metrics: dict[str, float]) -> bool:
    """DiffuseMorph's Dice is within noise of the VoxelMorph-style baseline's, or better."""
    z = metrics.get("gate/z", 2.0)
    return metrics["gate/dice_minus_voxelmorph"] >= -z * metrics["gate/dice_minus_voxelmorph_se"]


def gate(metrics: dict[str, float]) -> Gate:
    """The claim at this scale, each part a paired comparison beyond (or within) z standard errors:

    1. DiffuseMorph's Dice above the identity warp's;
    2. its Dice not below the VoxelMorph-style baseline's (within noise or better), unless
       ``eval.gate_dice_vs_baseline`` is false (the default scale, where it does not hold: README);
    3. its folding % not above the baseline's beyond noise + ``folding_margin``;
    4. the continuum: mean displacement grows with eta (eta = 1 above eta = 0 beyond noise),
       monotone, with no single step making more than ``max_step_share`` of the change, and folding
       at every eta not above the baseline's folding + ``folding_margin``.
    """
    z = metrics.get("gate/z", 2.0)
    margin = metrics.get("gate/folding_margin", 0.0)
    reasons = []
    d, se = metrics["gate/dice_minus_identity"], metrics["gate/dice_minus_identity_se"]
    if not d > z * se:
        reasons.append(f"Dice - identity = {d:+.4f} +- {se:.4f}: not above identity beyond {z:g} se")
    if metrics.get("gate/dice_vs_baseline_gated", 1.0) >= 1 and not dice_holds_vs_baseline(metrics):
        d, se = metrics["gate/dice_minus_voxelmorph"], metrics["gate/dice_minus_voxelmorph_se"]
        reasons.append(f"Dice - VoxelMorph-style = {d:+.4f} +- {se:.4f}: worse beyond {z:g} se")
    d, se = metrics["gate/folding_minus_voxelmorph"], metrics["gate/folding_minus_voxelmorph_se"]
    if d > z * se + margin:
        reasons.append(f"folding % - VoxelMorph-style = {d:+.3f} +- {se:.3f}: higher beyond noise + {margin:g}")
    d, se = metrics["gate/eta_disp_gain"], metrics["gate/eta_disp_gain_se"]
    if not d > z * se:
        reasons.append(f"displacement(eta=1) - displacement(eta=0) = {d:+.3f} +- {se:.3f} px: no continuum")
    if metrics["gate/eta_disp_monotone"] < 1:
        reasons.append("mean displacement is not monotone in eta")
    share, limit = metrics["gate/eta_disp_max_step_share"], metrics.get("gate/max_step_share", 0.6)
    if share > limit:
        reasons.append(f"one eta step makes {share:.0%} of the displacement change (limit {limit:.0%}): not smooth")
    worst, vm = metrics["gate/eta_max_folding"], metrics["voxelmorph/folding"]
    if worst > vm + margin:
        reasons.append(f"folding at some eta = {worst:.3f} % > VoxelMorph-style {vm:.3f} % + {margin:g}")
    return Gate(not reasons, tuple(reasons))
