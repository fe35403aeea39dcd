"""The report's overview figure: per paper, ours against the classical baseline in standard errors,
coloured by the gate's verdict.

Units differ between papers (dB, Dice, AUC, accuracy), so the bar is the paired difference divided
by its standard error, signed so that right of zero favours ours; the dashed lines at +-2 mark
"beyond noise". A paper without a comparable baseline (none recorded, or no standard error) gets
no bar and says why on its row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from components.report.collect import PaperEntry

COLOURS = {True: "#2e7d32", False: "#c62828", None: "#757575"}


def why_no_bar(entry: PaperEntry) -> str:
    """Why a paper has no bar (empty when it has one)."""
    if entry.claim is None:
        return "no claim recorded"
    if entry.baseline is None:
        return "no classical baseline"
    if entry.baseline.diff is None:
        return "difference not measured"
    if entry.baseline.z is None:
        return "no standard error"
    return ""


def overview(entries: Sequence[PaperEntry], path: Path) -> Path:
    """Write the overview bar chart (PNG) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(reversed(entries))  # first paper at the top
    fig, ax = plt.subplots(figsize=(8.0, 0.5 * len(rows) + 1.6), dpi=100)
    zs = [e.baseline.z if e.baseline is not None else None for e in rows]
    finite = [abs(z) for z in zs if z is not None]
    limit = max([3.0, *finite]) * 1.15
    for i, (entry, z) in enumerate(zip(rows, zs, strict=True)):
        if z is not None:
            ax.barh(i, z, color=COLOURS[entry.gate_passed], height=0.6)
        else:
            ax.text(0.05 * limit, i, why_no_bar(entry), va="center", ha="left", fontsize=8, color="#555555")
    for x in (-2.0, 2.0):
        ax.axvline(x, color="#999999", linestyle="--", linewidth=0.8)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlim(-limit, limit)
    ax.set_yticks(range(len(rows)), [e.paper for e in rows])
    ax.set_xlabel("ours minus classical baseline, in standard errors (> 0 favours ours)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    ax.legend(handles, ["gate passed", "gate failed", "not registered"], loc="lower right", fontsize=8)
    count = f"{len(rows)} paper" + ("" if len(rows) == 1 else "s")
    ax.set_title(f"{count}: paired difference to the classical baseline, and the gate")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
