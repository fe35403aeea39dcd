"""Evaluation: per task, CCDF over t0 x init against reverse diffusion from noise at N' and N = 1000.

For every task (sr, inpaint, mri) the held-out images are measured with a fixed seed, and
reconstructed by (all with the same score model and the same data-consistency map):

* ``init``: the initial estimate alone (simple; network = simple + supervised U-Net);
* ``ccdf``: Algorithm 1 from each init at each t0 of ``eval.t0s`` (N' = t0 N reverse steps);
* ``noise``: reverse diffusion from pure noise with N' steps (each N' of the grid) and with
  ``sampling.full_steps`` (1000) steps on the first ``eval.full_count`` images.

Per row: PSNR and SSIM (mean over images), the patch sliced-Wasserstein distance to the truth
(components.blocks.metrics.distribution: why that measure is there), network evaluations per
image (NFE) and wall time per image. ``psnr_sub`` is the PSNR on the images the 1000-step
baseline also saw, which is what the gate compares; ``d_full`` +- ``d_full_se`` the paired
per-image PSNR difference to that baseline and its standard error.
"""

from __future__ import annotations

import math
import time

import pandas as pd
import torch

from components.blocks.metrics.distribution import sliced_wasserstein
from components.blocks.metrics.image import psnr_per_image, ssim
from components.contract import Gate, RunContext
from components.papers.ccdf.config import CCDFConfig
from components.papers.ccdf.data import load_split, task_kind
from components.papers.ccdf.model import CCDFModel, load
from components.papers.ccdf.report import write_reports
from components.papers.ccdf.solver import ccdf, from_noise, n_prime
from components.papers.ccdf.tasks import simple_init, simulate


def _row(task: str, method: str, init: str, t0: float, nfe: int, out: torch.Tensor, x: torch.Tensor, n_sub: int, wall: float) -> dict:
    pred, truth = ((out.float().cpu() + 1) / 2).clamp(0, 1), (x.cpu() + 1) / 2
    p = psnr_per_image(pred, truth)
    return {"task": task, "method": method, "init": init, "t0": t0, "nfe": nfe, "psnr": float(p.mean()),
            "psnr_sub": float(p[:n_sub].mean()), "_per_image": p, "ssim": ssim(pred, truth), "swd": sliced_wasserstein(pred, truth),
            "wall_s": wall / len(x), "images": len(x)}


def run_task(model: CCDFModel, task: str, x: torch.Tensor, cfg: CCDFConfig, ctx: RunContext, seed: int) -> tuple[list[dict], dict]:
    """All rows of one task on ground truth ``x`` ``(n, 1, S, S)`` in [-1, 1]; and example images."""
    gen = torch.Generator().manual_seed(seed)
    op, y = simulate(task, x, cfg.task, gen)
    x, y, dev = x.to(ctx.device), y.to(ctx.device), ctx.device
    s, n_sub = cfg.sampling, min(cfg.eval.full_count, len(x))
    inits = {"simple": simple_init(task, op, y)}
    if task in model.init_nets:
        inits["network"] = model.initialise(task, inits["simple"])
    rows = [_row(task, "init", k, 0.0, int(k == "network"), v, x, n_sub, 0.0) for k, v in inits.items()]
    examples = {"truth": x[:1], **{f"init {k}": v[:1] for k, v in inits.items()}}
    t0s = sorted(set(cfg.eval.t0s) | {s.t0})
    for init, x0_hat in inits.items():
        for t0 in ctx.progress(t0s, total=len(t0s), desc=f"{task} ccdf/{init}"):
            start = time.perf_counter()
            out, nfe = ccdf(model.eps, x0_hat, op, y, model.abar, steps=s.steps, t0=t0, generator=gen)
            rows.append(_row(task, "ccdf", init, t0, nfe, out, x, n_sub, time.perf_counter() - start))
            if t0 == s.t0:
                examples[f"CCDF {init} N'={nfe}"] = out[:1]
    for steps in sorted({n_prime(t, s.steps) for t in t0s}):
        start = time.perf_counter()
        out, nfe = from_noise(model.eps, tuple(x.shape), op, y, model.abar, steps=steps, generator=gen, device=dev)
        rows.append(_row(task, "noise", "-", steps / s.steps, nfe, out, x, n_sub, time.perf_counter() - start))
        if steps == n_prime(s.t0, s.steps):
            examples[f"noise N={nfe}"] = out[:1]
    sub_op, sub_y = _subset(task, op, y, n_sub)
    start = time.perf_counter()
    out, nfe = from_noise(model.eps, (n_sub, *x.shape[1:]), sub_op, sub_y, model.abar, steps=s.full_steps, generator=gen, device=dev)
    rows.append(_row(task, "noise", "-", 1.0, nfe, out, x[:n_sub], n_sub, time.perf_counter() - start))
    examples[f"noise N={nfe}"] = out[:1]
    full = rows[-1].pop("_per_image")
    for r in rows[:-1]:  # paired PSNR difference to 1000 steps from noise, on the same images
        d = r.pop("_per_image")[:n_sub] - full
        r["d_full"], r["d_full_se"] = float(d.mean()), float(d.std() / len(d) ** 0.5) if len(d) > 1 else 0.0
    rows[-1]["d_full"], rows[-1]["d_full_se"] = 0.0, 0.0
    return rows, examples


def _subset(task: str, op, y: torch.Tensor, n: int):
    """The operator and measurement of the first ``n`` images (masks are per image)."""
    if task == "sr":
        return op, y[:n]
    return type(op)(op.mask[:n]), y[:n]


def evaluate(cfg: CCDFConfig, ctx: RunContext) -> dict[str, float]:
    """Evaluate ``models/ccdf`` on the held-out images of every task; write tables and figures."""
    model = load(ctx.model_dir)
    model.unet.to(ctx.device)
    for net in model.init_nets.values():
        net.to(ctx.device)
    rows, examples = [], {}
    for i, task in enumerate(cfg.eval.tasks):
        x = load_split(ctx.data_dir, "eval", task_kind(task))
        with torch.autocast("cuda", dtype=torch.float16) if ctx.use_amp else torch.no_grad():
            task_rows, examples[task] = run_task(model, task, x, cfg, ctx, cfg.seed * 100 + i)
        rows += task_rows
        ctx.log.info("evaluated %s", task)
    df = pd.DataFrame(rows)
    metrics = _metrics(df, cfg)
    write_reports(ctx, df, examples, metrics, cfg)
    return metrics


def _label(r: dict) -> str:
    if r["method"] == "ccdf":
        return f"ccdf_{r['init']}_t{r['t0']:g}"
    if r["method"] == "noise":
        return f"noise_N{r['nfe']}"
    return f"init_{r['init']}"


def _metrics(df: pd.DataFrame, cfg: CCDFConfig) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in df.to_dict("records"):
        for key in ("psnr", "ssim", "swd", "nfe", "wall_s"):
            out[f"{r['task']}/{_label(r)}/{key}"] = float(r[key])
    s = cfg.sampling
    np_gate = n_prime(s.t0, s.steps)
    out["gate/n_prime"] = float(np_gate)
    out["gate/psnr_margin_db"] = cfg.eval.psnr_margin_db
    out["gate/max_steps"] = float(cfg.eval.max_gate_steps)
    for task, g in df.groupby("task"):
        c = g[(g.method == "ccdf") & (g.t0 == s.t0)]
        out[f"{task}/gate/ccdf_psnr"] = float(c.psnr_sub.max())
        out[f"{task}/gate/full_psnr"] = float(g[(g.method == "noise") & (g.nfe == s.full_steps)].psnr_sub.iloc[0])
        out[f"{task}/gate/noise_psnr"] = float(g[(g.method == "noise") & (g.nfe == np_gate)].psnr_sub.iloc[0])
        for init, gi in g[g.method == "ccdf"].groupby("init"):
            out[f"{task}/best_t0_{init}"] = float(gi.loc[gi.psnr.idxmax(), "t0"])
    return {k: v for k, v in out.items() if math.isfinite(v)}


def gate(metrics: dict[str, float]) -> Gate:
    """Champion iff, for every task, CCDF at N' <= 20 is within the margin of the 1000-step PSNR and
    beats N'-step sampling from noise (the paper's claim; the issue's gate)."""
    reasons = []
    n, cap, margin = metrics.get("gate/n_prime", math.inf), metrics.get("gate/max_steps", 20.0), metrics.get("gate/psnr_margin_db", 1.0)
    if not n <= cap:
        reasons.append(f"CCDF ran N' = {n:g} steps; the claim is about N' <= {cap:g}")
    tasks = sorted({k.split("/")[0] for k in metrics if k.endswith("/gate/ccdf_psnr")})
    if not tasks:
        reasons.append("no task was evaluated")
    for t in tasks:
        c, full, noise = (metrics.get(f"{t}/gate/{k}_psnr", math.nan) for k in ("ccdf", "full", "noise"))
        if not c >= full - margin:
            reasons.append(f"{t}: CCDF {c:.2f} dB at N'={n:g} is more than {margin:g} dB below 1000 steps from noise ({full:.2f} dB)")
        if not c > noise:
            reasons.append(f"{t}: CCDF {c:.2f} dB does not beat {n:g} steps from noise ({noise:.2f} dB)")
    return Gate(passed=not reasons, reasons=tuple(reasons))
