"""Evaluation: FeSTA against local-only, whole-model FedAvg and centralised training, paired by seed.

Every method was trained once per seed on the same clients (train.py). Each task's models are
scored on that task's held-out test set (hospitals of their own, balanced labels):

* cls: macro AUC and macro F1 of the class probabilities (metrics.py);
* seg: Dice per image, over the test images that hold a lesion;
* sev: absolute error per image (its mean, the MAE).

Local-only has one model per client: its score on a task is the mean over the task's clients (a
hospital's own model on the shared test set), per image for the per-image metrics.

**Paired differences.** For FeSTA against each baseline and each metric: the difference per seed
``d_s`` (same seed = same data, initial weights and batches), its mean ``d``, and two standard
errors, added in quadrature (as in components/blocks/metrics/paired.py):

* seeds: ``sd(d_s) / sqrt(S)``;
* the finite test set: per-image metrics, ``sd_i(mean_s d_{s,i}) / sqrt(n)``; AUC and F1, the sd of
  the seed-mean difference over ``eval.bootstrap`` resamples of the test images (one set of
  resampled indices shared by both methods: paired).

A difference is *beyond noise* when it exceeds ``eval.z`` of those standard errors.

**The gate** (the paper's claim at this scale): FeSTA better than local-only beyond noise on every
task (AUC for cls, Dice for seg, MAE for sev), and its bytes per round below whole-model FedAvg's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from components.contract import Gate, RunContext
from components.papers.festa.config import FeSTAConfig
from components.papers.festa.data import as_tensors, client_list, load_split
from components.papers.festa.metrics import abs_errors, auc, dice_per_image, f1
from components.papers.festa.model import FeSTAModel, model_config
from components.papers.festa.report import write_reports
from components.papers.festa.train import load_run, run_name, runs_dir, seeds

# task -> (headline metric, higher is better); the metrics reported per task
PRIMARY = {"cls": ("auc", True), "seg": ("dice", True), "sev": ("mae", False)}
TASK_METRICS = {"cls": ("auc", "f1"), "seg": ("dice",), "sev": ("mae",)}
BASELINES = ("local", "fedavg", "central")


def _models(
    method: str, state: dict[str, torch.Tensor], mc: dict[str, Any], tasks: list[str], clients: list[tuple[str, int]]
) -> dict[str, list[FeSTAModel]]:
    """Per task, the method's model(s) for it: one, or one per client (local)."""

    def part(prefix: str, task_list: list[str]) -> FeSTAModel:
        m = FeSTAModel(mc, task_list, seed=0)
        m.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        return m.eval()

    if method in ("festa", "central"):
        whole = part("", tasks)
        return {t: [whole] for t in tasks}
    if method == "fedavg":
        return {t: [part(f"{t}.", [t])] for t in tasks}
    out: dict[str, list[FeSTAModel]] = {t: [] for t in tasks}
    for i, (task, _) in enumerate(clients):
        out[task].append(part(f"client{i}.", [task]))
    return out


@torch.no_grad()
def outputs(models: list[FeSTAModel], task: str, test: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """Per model: cls probabilities ``(n, 3)``, sev predictions ``(n,)``, seg masks ``(n, S, S)`` bool."""
    res = []
    for m in models:
        out = torch.cat([m(x, task) for x in test["image"].split(256)])
        if task == "cls":
            res.append(out.softmax(1).numpy())
        elif task == "sev":
            res.append(out.numpy())
        else:
            res.append(out[:, 0].numpy() > 0)
    return res


def per_image(task: str, outs: list[np.ndarray], test: dict[str, torch.Tensor]) -> np.ndarray:
    """The per-image metric, averaged over the models (local: over a task's clients): sev abs error
    ``(n,)``; seg Dice ``(n_lesion,)``."""
    if task == "sev":
        return np.mean([abs_errors(o, test["severity"].numpy()) for o in outs], axis=0)
    mask = test["mask"][:, 0].numpy() > 0.5
    lesion = mask.reshape(len(mask), -1).any(1)
    return np.mean([dice_per_image(o, mask)[lesion] for o in outs], axis=0)


def cls_scores(outs: list[np.ndarray], label: np.ndarray, idx: np.ndarray | None = None) -> dict[str, float]:
    """Mean over models of AUC and F1 on the test images ``idx`` (all when None)."""
    sel = slice(None) if idx is None else idx
    return {
        "auc": float(np.mean([auc(o[sel], label[sel]) for o in outs])),
        "f1": float(np.mean([f1(o[sel].argmax(1), label[sel]) for o in outs])),
    }


def evaluate(cfg: FeSTAConfig, ctx: RunContext) -> dict[str, float]:
    """Score every run on the test sets; paired differences; tables, figures, results.md."""
    tasks: list[str] = list(cfg.train.tasks)
    mc = model_config(cfg)
    clients = client_list(tasks, cfg.data.clients_per_task)
    tests = {t: as_tensors(load_split(ctx.data_dir, f"test_{t}")) for t in tasks}
    folder = runs_dir(cfg, ctx)
    ss = seeds(cfg)
    methods: list[str] = list(cfg.eval.methods)
    # scores[method][task] -> per seed: {"auc", "f1"} (cls) or the per-image array (seg, sev)
    outs: dict[str, dict[str, list[list[np.ndarray]]]] = {m: {t: [] for t in tasks} for m in methods}
    infos: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for method in methods:
        for s in ctx.progress(ss, desc=f"evaluate {method}"):
            state, info = load_run(folder, run_name(method, s))
            infos[method].append(info)
            for task, models in _models(method, state, mc, tasks, clients).items():
                outs[method][task].append(outputs(models, task, tests[task]))
    metrics: dict[str, float] = {}
    gen = np.random.default_rng(cfg.seed)
    boot = {
        t: [gen.integers(0, len(tests[t]["label"]), len(tests[t]["label"])) for _ in range(cfg.eval.bootstrap)]
        for t in tasks
    }
    per_seed: dict[tuple[str, str, str], np.ndarray] = {}  # (method, task, metric) -> (S,)
    per_img: dict[tuple[str, str], np.ndarray] = {}  # (method, task) -> (S, n)
    boot_vals: dict[tuple[str, str, str], np.ndarray] = {}  # (method, task, metric) -> (bootstrap, S)
    for method in methods:
        for task in tasks:
            if task == "cls":
                label = tests[task]["label"].numpy()
                for name in ("auc", "f1"):
                    per_seed[(method, task, name)] = np.array([cls_scores(o, label)[name] for o in outs[method][task]])
                    boot_vals[(method, task, name)] = np.array(
                        [[cls_scores(o, label, idx)[name] for o in outs[method][task]] for idx in boot[task]]
                    )
            else:
                arr = np.stack([per_image(task, o, tests[task]) for o in outs[method][task]])
                per_img[(method, task)] = arr
                per_seed[(method, task, TASK_METRICS[task][0])] = arr.mean(1)
    for (method, task, name), v in per_seed.items():
        metrics[f"{method}/{task}_{name}"] = float(v.mean())
        metrics[f"{method}/{task}_{name}_se"] = float(v.std(ddof=1) / math.sqrt(len(v)))
    for base in (m for m in methods if m != "festa"):
        for task in tasks:
            for name in TASK_METRICS[task]:
                d = per_seed[("festa", task, name)] - per_seed[(base, task, name)]
                se_seed = float(d.std(ddof=1) / math.sqrt(len(d)))
                if task == "cls":
                    bd = (boot_vals[("festa", task, name)] - boot_vals[(base, task, name)]).mean(1)
                    se_test = float(bd.std(ddof=1))
                else:
                    di = (per_img[("festa", task)] - per_img[(base, task)]).mean(0)
                    se_test = float(di.std(ddof=1) / math.sqrt(len(di)))
                key = f"festa-{base}/{task}_{name}"
                metrics[key] = float(d.mean())
                metrics[f"{key}_se"] = float(math.hypot(se_seed, se_test))
                metrics[f"{key}_se_seeds"] = se_seed
                metrics[f"{key}_se_test"] = se_test
    for method in methods:
        runs = infos[method]
        for key in ("bytes_per_round", "bytes_per_round_mtl", "bytes_per_round_ft"):
            vals = [r[key] for r in runs if key in r]
            if vals:
                metrics[f"{method}/{key}"] = float(np.mean(vals))
        metrics[f"{method}/cpu_s"] = float(np.mean([r.get("cpu_s", math.nan) for r in runs]))
        metrics[f"{method}/dropped_clients"] = float(sum(len(r.get("dropped", [])) for r in runs))
    metrics.update(_params(cfg))
    metrics["seeds"] = float(len(ss))
    metrics["z"] = float(cfg.eval.z)
    metrics["gate_bytes"] = float(cfg.eval.gate_bytes)
    write_reports(ctx, cfg, metrics, per_seed, infos)
    return metrics


def _params(cfg: FeSTAConfig) -> dict[str, float]:
    from components.papers.festa.baselines import parameter_counts

    return {
        f"params/{k.removeprefix('params_')}": v
        for k, v in parameter_counts(model_config(cfg), list(cfg.train.tasks)).items()
    }


def gate(metrics: dict[str, float]) -> Gate:
    """Champion iff FeSTA beats local-only beyond ``z`` paired SEs on every evaluated task's headline
    metric (AUC, Dice, MAE lower), and (``eval.gate_bytes``) sends fewer bytes per round than
    whole-model FedAvg."""
    z = metrics.get("z", 2.0)
    reasons = []
    tasks = [t for t in PRIMARY if f"festa-local/{t}_{PRIMARY[t][0]}" in metrics]
    if not tasks:
        reasons.append("no FeSTA - local-only comparison was evaluated")
    for task in tasks:
        name, higher = PRIMARY[task]
        d, se = metrics[f"festa-local/{task}_{name}"], metrics.get(f"festa-local/{task}_{name}_se", math.nan)
        gain = d if higher else -d
        if not (math.isfinite(gain) and math.isfinite(se) and gain > z * se and gain > 0):
            reasons.append(f"{task}: FeSTA - local-only {name} = {d:+.4f}, not better beyond {z:g} SE ({se:.4f})")
    if metrics.get("gate_bytes", 1.0):
        fb, ab = metrics.get("festa/bytes_per_round", math.nan), metrics.get("fedavg/bytes_per_round", math.nan)
        if not fb < ab:
            reasons.append(f"FeSTA sends {fb:.0f} bytes per round, not fewer than whole-model FedAvg's {ab:.0f}")
    return Gate(passed=not reasons, reasons=tuple(reasons))
