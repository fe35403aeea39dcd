"""``reports/festa/``: results.md, results.csv, figures (and their MLflow copies)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from components.contract import RunContext

if TYPE_CHECKING:
    import pandas as pd

LABELS = {
    "festa": "FeSTA (split, multi-task)",
    "local": "local-only",
    "fedavg": "FedAvg (whole model, per task)",
    "central": "centralised (multi-task)",
}
COLUMNS = [
    ("cls", "auc", "cls AUC ↑"),
    ("cls", "f1", "cls F1 ↑"),
    ("seg", "dice", "seg Dice ↑"),
    ("sev", "mae", "sev MAE ↓"),
]
PAPER = (
    "The paper (Park et al., NeurIPS 2021, arXiv 2111.01338) trains a ViT-B/16 body on CXR data of "
    "several hospitals per task (COVID-19 classification, severity on a 3x2 lung-region score array, "
    "pneumothorax segmentation), and reports that FeSTA under non-IID data comes close to centralised "
    "training and above single-task FL and local training, with the multi-task body helping each task, "
    "while transmitting less than FL of the whole ViT. Its tables are on real data and a 86M-parameter "
    "body; the numbers here are on synthetic 32x32 images with a small body (README, deviations)."
)


def _pm(m: float, se: float, digits: int = 3) -> str:
    if not math.isfinite(m):
        return "-"
    return f"{m:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{m:.{digits}f}"


def tables(metrics: dict[str, float], methods: list[str], tasks: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per method: each metric's mean and SE over seeds, bytes, parameters, CPU; paired differences."""
    import pandas as pd  # not at import: the fork server that starts the clients preloads this package

    rows = []
    for m in methods:
        row: dict[str, Any] = {"method": m}
        for task, name, _ in COLUMNS:
            if task in tasks:
                row[f"{task}_{name}"] = metrics.get(f"{m}/{task}_{name}", math.nan)
                row[f"{task}_{name}_se"] = metrics.get(f"{m}/{task}_{name}_se", math.nan)
        row["bytes_per_round"] = metrics.get(f"{m}/bytes_per_round", math.nan)
        row["cpu_s_per_run"] = metrics.get(f"{m}/cpu_s", math.nan)
        rows.append(row)
    diffs = []
    for base in (m for m in methods if m != "festa"):
        for task, name, _ in COLUMNS:
            key = f"festa-{base}/{task}_{name}"
            if key in metrics:
                d, se = metrics[key], metrics[f"{key}_se"]
                gain = -d if name == "mae" else d
                z = metrics.get("z", 2.0)
                diffs.append(
                    {
                        "baseline": base,
                        "task": task,
                        "metric": name,
                        "festa_minus_baseline": d,
                        "se": se,
                        "se_seeds": metrics[f"{key}_se_seeds"],
                        "se_test": metrics[f"{key}_se_test"],
                        "verdict": "FeSTA better"
                        if gain > z * se
                        else ("FeSTA worse" if -gain > z * se else "within noise"),
                    }
                )
    return pd.DataFrame(rows), pd.DataFrame(diffs)


def markdown(
    metrics: dict[str, float], methods: list[str], tasks: list[str], gate_lines: list[str], command: str
) -> str:
    summary, diffs = tables(metrics, methods, tasks)
    cols = [(t, n, h) for t, n, h in COLUMNS if t in tasks]
    head = ["method", *[h for *_, h in cols], "bytes / round", "CPU s / run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.to_dict("records"):
        b = r["bytes_per_round"]
        cells = [_pm(r[f"{t}_{n}"], r[f"{t}_{n}_se"]) for t, n, _ in cols]
        lines.append(
            f"| {LABELS[r['method']]} | "
            + " | ".join(cells)
            + f" | {'-' if not math.isfinite(b) else f'{b / 1e3:,.0f} kB'} | {r['cpu_s_per_run']:.1f} |"
        )
    dl = [
        "| FeSTA - baseline | metric | difference ± SE | SE seeds | SE test set | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in diffs.to_dict("records"):
        dl.append(
            f"| {LABELS[r['baseline']]} | {r['task']} {r['metric']} | {r['festa_minus_baseline']:+.4f} ± {r['se']:.4f} "
            f"| {r['se_seeds']:.4f} | {r['se_test']:.4f} | {r['verdict']} |"
        )
    params = [f"- {k.removeprefix('params/')}: {v:,.0f}" for k, v in sorted(metrics.items()) if k.startswith("params/")]
    fb, ab = metrics.get("festa/bytes_per_round"), metrics.get("fedavg/bytes_per_round")
    ratio = f"{ab / fb:.1f}x fewer than whole-model FedAvg" if fb and ab else ""
    md = [
        "# FeSTA (arXiv 2111.01338): results",
        "",
        f"Command: `{command}`. Seeds: {int(metrics.get('seeds', 0))} (paired: same data, initial weights and "
        "batches per seed). Every method trained on the same clients' synthetic non-IID data and scored on "
        "each task's held-out test hospitals. Mean ± standard error over seeds.",
        "",
        *lines,
        "",
        f"FeSTA bytes per round (both directions, all clients, headers included): "
        f"{metrics.get('festa/bytes_per_round', math.nan):,.0f} overall, "
        f"{metrics.get('festa/bytes_per_round_mtl', math.nan):,.0f} in the multi-task stage, "
        f"{metrics.get('festa/bytes_per_round_ft', math.nan):,.0f} in the fine-tuning stage; {ratio}.",
        f"Clients dropped during FeSTA runs: {int(metrics.get('festa/dropped_clients', 0))}.",
        "",
        "## Paired differences",
        "",
        f"SE = seed SE and test-set SE in quadrature; a difference counts beyond {metrics.get('z', 2.0):g} SE.",
        "",
        *dl,
        "",
        "## Parameters",
        "",
        *params,
        "",
        "## Gate",
        "",
        *gate_lines,
        "",
        "## The paper",
        "",
        PAPER,
        "",
    ]
    return "\n".join(md)


def write_reports(
    ctx: RunContext,
    cfg: Any,
    metrics: dict[str, float],
    per_seed: dict[tuple[str, str, str], np.ndarray],
    infos: dict[str, list[dict[str, Any]]],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from components.papers.festa.evaluate import gate

    methods, tasks = list(cfg.eval.methods), list(cfg.train.tasks)
    out = ctx.report_dir
    (out / "figures").mkdir(parents=True, exist_ok=True)
    summary, diffs = tables(metrics, methods, tasks)
    summary.to_csv(out / "results.csv", index=False, float_format="%.5f")
    verdict = gate(metrics)
    gate_lines = ["passed" if verdict.passed else "not passed:", *[f"- {r}" for r in verdict.reasons]]
    (out / "results.md").write_text(markdown(metrics, methods, tasks, gate_lines, "paperops run festa"))
    ctx.logger.log_table(summary, "results.json")
    ctx.logger.log_table(diffs, "paired.json")

    cols = [(t, n, h) for t, n, h in COLUMNS if t in tasks]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3.2))
    for ax, (task, name, head) in zip(np.atleast_1d(axes), cols, strict=True):
        for j, m in enumerate(methods):
            v = per_seed[(m, task, name)]
            ax.bar(j, v.mean(), yerr=v.std(ddof=1) / np.sqrt(len(v)), color=f"C{j}", capsize=3)
            ax.scatter([j] * len(v), v, color="k", s=8, zorder=3)
        ax.set_xticks(range(len(methods)), methods, rotation=30)
        ax.set_title(head, fontsize=9)
    fig.suptitle("FeSTA and baselines (bars: mean ± SE over seeds; dots: seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "figures" / "metrics.png", dpi=100)
    ctx.logger.log_figure(fig, "metrics.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, flat in sorted(infos["festa"][0].get("history", {}).items()):
        ax.plot(flat[0::2], flat[1::2], label=key.removeprefix("loss/"))
    ax.set_xlabel("round")
    ax.set_ylabel("client loss (mean over a task's clients)")
    ax.set_yscale("log")
    ax.set_title("FeSTA training, first seed (multi-task stage, then fine-tuning)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "figures" / "festa_loss.png", dpi=100)
    ctx.logger.log_figure(fig, "festa_loss.png")
    plt.close(fig)
