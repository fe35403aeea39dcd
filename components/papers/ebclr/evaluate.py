"""Evaluation: linear-probe and k-NN accuracy of every run's frozen encoder after every epoch.

For each (method, batch size) run and each epoch snapshot (epoch 0 = the random initialisation,
the floor), the encoder embeds the training and test splits (no augmentation); a linear probe is
fitted on the training features and scored on the test features, and the k-NN monitor (K = 20,
cosine, weights exp(sim / 0.07)) classifies the test features by the training ones. From the
curves: the epochs-to-accuracy ratio against each baseline, the batch-size gap of each method and
the wall-clock per epoch (from training). The gate is the issue's claim at the trained budget.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from components.blocks.metrics.probe import embed, fit_linear_probe, knn_accuracy
from components.contract import Gate, RunContext
from components.papers.ebclr.config import EBCLRPaperConfig
from components.papers.ebclr.data import load, to_input
from components.papers.ebclr.report import write_reports
from components.papers.ebclr.train import load_snapshot, plan, run_name, set_cpu_threads, snapshot_path

BASELINES = ("simclr", "moco")


def evaluate(cfg: EBCLRPaperConfig, ctx: RunContext) -> dict[str, float]:
    """Score every snapshot of ``models/ebclr/runs``; write results.csv/.md and figures; return the metrics."""
    set_cpu_threads(cfg, ctx)
    split = load(ctx.data_dir)
    history = json.loads((ctx.model_root / "train_history.json").read_text())
    channels = int(split.train_x.shape[1])
    e = cfg.eval
    xs_train, xs_test = to_input(split.train_x), to_input(split.test_x)
    rows = []
    jobs = [(m, b, ep) for m, b in plan(cfg) for ep in range(cfg.train.epochs + 1)]
    for method, bs, epoch in ctx.progress(jobs, total=len(jobs), desc="ebclr evaluate"):
        enc = load_snapshot(snapshot_path(ctx.model_root, method, bs, epoch), method, channels, cfg.model.width)
        z_tr, z_te = embed(enc, xs_train), embed(enc, xs_test)
        probe = fit_linear_probe(z_tr, split.train_y, split.n_classes, e.probe, e.probe_epochs, e.probe_weight_decay,
                                 seed=cfg.seed)
        secs = history[run_name(method, bs)]["epoch_seconds"]
        row = {
            "method": method, "batch_size": bs, "epoch": epoch,
            "probe_acc": probe.accuracy(z_te, split.test_y),
            "knn_acc": knn_accuracy(z_tr, split.train_y, z_te, split.test_y, split.n_classes, e.knn_k, e.knn_temperature),
            "epoch_seconds": secs[epoch - 1] if epoch > 0 else float("nan"),
        }
        rows.append(row)
        ctx.logger.log_metrics({f"{run_name(method, bs)}/probe_acc": row["probe_acc"],
                                f"{run_name(method, bs)}/knn_acc": row["knn_acc"]}, step=epoch)
    df = pd.DataFrame(rows)
    metrics = summarize(df, cfg.train.epochs)
    write_reports(ctx, df, metrics, gate(metrics), cfg)
    return metrics


def epochs_to(curve: pd.Series, target: float) -> int | None:
    """First epoch >= 1 whose accuracy reaches ``target`` (None if never)."""
    hits = curve[(curve.index >= 1) & (curve >= target - 1e-9)]
    return int(hits.index[0]) if len(hits) else None


def summarize(df: pd.DataFrame, epochs: int) -> dict[str, float]:
    """Headline metrics (all finite floats) from the per-epoch table."""
    out: dict[str, float] = {}
    final = df[df.epoch == epochs]
    for r in final.to_dict("records"):
        key = run_name(r["method"], r["batch_size"])
        out[f"{key}/probe_acc"] = r["probe_acc"]
        out[f"{key}/knn_acc"] = r["knn_acc"]
        sec = df[(df.method == r["method"]) & (df.batch_size == r["batch_size"]) & (df.epoch > 0)].epoch_seconds.mean()
        out[f"{key}/epoch_seconds"] = float(sec)
    for r in df[df.epoch == 0].to_dict("records"):
        out[f"{run_name(r['method'], r['batch_size'])}/random_probe_acc"] = r["probe_acc"]
        out[f"{run_name(r['method'], r['batch_size'])}/random_knn_acc"] = r["knn_acc"]
    for bs in sorted(df.batch_size.unique()):
        bs = int(bs)
        if "ebclr" not in set(df.method):
            break
        curve = lambda m, col="probe_acc": df[(df.method == m) & (df.batch_size == bs)].set_index("epoch")[col]  # noqa: E731
        for base in BASELINES:
            if base not in set(df.method):
                continue
            for col in ("probe_acc", "knn_acc"):
                target = float(curve(base, col).iloc[-1])  # the baseline's accuracy at the full budget
                e_base, e_ebclr = epochs_to(curve(base, col), target), epochs_to(curve("ebclr", col), target)
                if e_base is not None and e_ebclr is not None:
                    out[f"b{bs}/{base}_over_ebclr_epochs_{col}"] = e_base / e_ebclr
    sizes = sorted(int(b) for b in df.batch_size.unique())
    if len(sizes) > 1:
        for m in df.method.unique():
            for col in ("probe_acc", "knn_acc"):
                hi = out.get(f"{run_name(m, sizes[-1])}/{col}")
                lo = out.get(f"{run_name(m, sizes[0])}/{col}")
                if hi is not None and lo is not None:
                    out[f"{m}/batch_gap_{col}"] = hi - lo
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def gate(metrics: dict[str, float]) -> Gate:
    """Champion iff, at every trained batch size, EBCLR's final probe accuracy beats its random floor and
    every baseline's at the same epoch budget."""
    reasons = []
    sizes = sorted({int(k.split("/")[0].split("_b")[1]) for k in metrics if k.startswith("ebclr_b") and k.endswith("/probe_acc")})
    if not sizes:
        return Gate(False, ("no EBCLR run was evaluated",))
    for bs in sizes:
        acc = metrics[f"ebclr_b{bs}/probe_acc"]
        floor = metrics.get(f"ebclr_b{bs}/random_probe_acc", 0.0)
        if not acc > floor:
            reasons.append(f"batch {bs}: EBCLR probe {acc:.3f} <= random-encoder floor {floor:.3f}")
        for base in BASELINES:
            other = metrics.get(f"{base}_b{bs}/probe_acc")
            if other is not None and not acc > other:
                reasons.append(f"batch {bs}: EBCLR probe {acc:.3f} <= {base} {other:.3f} at the same epochs")
    return Gate(passed=not reasons, reasons=tuple(reasons))
