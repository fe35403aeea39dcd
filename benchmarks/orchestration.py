"""Orchestration overhead: one paper's pipeline through the CLI, DVC and Prefect vs its steps bare.

Each row runs in a fresh throw-away copy of the project on the smoke scale and prints as soon as it
is measured, with its wall time and CPU time (user + system of this process and its children:
on a shared machine the wall time moves with the neighbours, the CPU time much less):

* bare           the paper's prepare/train/evaluate/gate called in this process: no tracking, no DVC
* cli            ``paperops run <paper>``: the four stages in one process, with MLflow tracking
* dvc            ``dvc repro register@<paper>``: validate + the four stage processes, DVC hashing and
                 locking, MLflow tracking
* dvc no-op      the same ``dvc repro`` again, nothing changed
* prefect        ``python -m flows --paper <paper>`` in a fresh copy: Prefect (ephemeral mode) runs
                 the five DVC stages as tasks, each doing its real work
* prefect no-op  the same flow again: every task finds its DVC stage up to date

Run:  python benchmarks/orchestration.py [--paper fractional_lms] [--repeats 1]
      (fractional_lms: its smoke pipeline is a few CPU-seconds; any registered paper works)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.config import load_params  # noqa: E402
from components.contract import RunContext  # noqa: E402
from components.registry import get_paper  # noqa: E402
from tests.project_copy import copy_project  # noqa: E402


def cpu_s() -> float:
    """User + system CPU seconds of this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """``(wall s, CPU s)`` of ``fn()``."""
    wall, cpu = time.perf_counter(), cpu_s()
    fn()
    return time.perf_counter() - wall, cpu_s() - cpu


def bare(paper_name: str, root: Path) -> None:
    paper = get_paper(paper_name)
    cfg = load_params(root / "params.yaml").config(paper_name)
    ctx = RunContext(paper=paper_name, root=root, seed=cfg.seed)
    paper.prepare(cfg, ctx)
    paper.train(cfg, ctx)
    paper.gate(paper.evaluate(cfg, ctx))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paper", default="fractional_lms")
    parser.add_argument("--repeats", type=int, default=1, help="repeats of each measurement (median)")
    args = parser.parse_args()
    os.environ.setdefault("PAPEROPS_NO_PROGRESS", "1")
    started = time.perf_counter()
    rows: dict[str, list[tuple[float, float]]] = {}

    def record(name: str, fn: Callable[[], object]) -> None:
        try:
            wall, cpu = timed(fn)
        except RuntimeError as exc:  # a failed command: say so and go on with the other rows
            print(f"  {name:14s} FAILED: {str(exc).strip().splitlines()[-1][:300]}", flush=True)
            return
        rows.setdefault(name, []).append((wall, cpu))
        base = statistics.median(w for w, _ in rows["bare"]) if "bare" in rows else None
        base_cpu = statistics.median(c for _, c in rows["bare"]) if "bare" in rows else None
        ratio = f"  {wall / base:5.1f}x wall, {cpu / base_cpu:5.1f}x CPU of bare" if base and base_cpu else ""
        print(f"  {name:14s} {wall:7.1f} s wall {cpu:7.1f} s CPU{ratio}", flush=True)

    print(f"{args.paper}, smoke scale, {args.repeats} repeat(s), {os.cpu_count()} cores", flush=True)
    target = f"register@{args.paper}"
    flow = (sys.executable, "-m", "flows", "--paper", args.paper)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            b = copy_project(Path(tmp) / f"bare{i}")
            record("bare", lambda b=b: bare(args.paper, b.path))
            c = copy_project(Path(tmp) / f"cli{i}")
            record("cli", lambda c=c: c.run("paperops", "run", args.paper))
            d = copy_project(Path(tmp) / f"dvc{i}")
            record("dvc", lambda d=d: d.run("dvc", "repro", target))
            record("dvc no-op", lambda d=d: d.run("dvc", "repro", target))
            p = copy_project(Path(tmp) / f"prefect{i}")
            # ephemeral mode starts a temporary server; Prefect gives it 20 s, which a busy machine misses
            p.env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
            record("prefect", lambda p=p: p.run(*flow))
            record("prefect no-op", lambda p=p: p.run(*flow))

    if "bare" not in rows:
        return 1
    base_w = statistics.median(w for w, _ in rows["bare"])
    base_c = statistics.median(c for _, c in rows["bare"])
    print(f"\n{args.paper}, smoke scale, median of {args.repeats}:\n")
    print(f"{'run':16s} {'wall s':>8s} {'CPU s':>8s} {'wall / bare':>12s} {'CPU / bare':>11s}")
    for name, values in rows.items():
        w, c = statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)
        print(f"{name:16s} {w:8.1f} {c:8.1f} {w / base_w:12.1f} {c / base_c:11.1f}")
    print(f"({time.perf_counter() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
