"""Orchestration overhead: the pipeline through DVC (and Prefect) vs the same steps called bare.

Everything runs side by side in one invocation on the smoke scale, in throw-away project copies:

* bare       the paper's prepare/train/evaluate called in this process, no tracking, no DVC
* cli        `paperops run <paper>`: the four stages in one process, with MLflow tracking
* dvc        `dvc repro register@<paper>`: the paper's four stage processes, DVC hashing and
             locking, MLflow tracking (the other papers of params.yaml are not run)
* dvc no-op  the same `dvc repro` again with nothing changed
* prefect    `python -m flows --paper <paper>` with nothing changed (ephemeral Prefect, DVC skips)

Run:  python benchmarks/orchestration.py [--paper noise2score] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.config import load_params  # noqa: E402
from components.contract import RunContext  # noqa: E402
from components.registry import get_paper  # noqa: E402
from tests.project_copy import copy_project  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bare(paper_name: str, root: Path) -> None:
    paper = get_paper(paper_name)
    cfg = load_params(root / "params.yaml").config(paper_name)
    ctx = RunContext(paper=paper_name, root=root, seed=cfg.seed)
    paper.prepare(cfg, ctx)
    paper.train(cfg, ctx)
    paper.gate(paper.evaluate(cfg, ctx))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paper", default="noise2score")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (median)")
    args = parser.parse_args()

    rows: dict[str, list[float]] = {k: [] for k in ("bare", "cli", "dvc", "dvc no-op", "prefect no-op")}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            b = copy_project(Path(tmp) / f"bare{i}")
            rows["bare"].append(timed(lambda b=b: bare(args.paper, b.path)))
            c = copy_project(Path(tmp) / f"cli{i}")
            rows["cli"].append(timed(lambda c=c: c.run("paperops", "run", args.paper)))
            d = copy_project(Path(tmp) / f"dvc{i}")
            target = f"register@{args.paper}"  # and, through its dependencies, the paper's other stages
            rows["dvc"].append(timed(lambda d=d, target=target: d.run("dvc", "repro", target)))
            rows["dvc no-op"].append(timed(lambda d=d, target=target: d.run("dvc", "repro", target)))
            rows["prefect no-op"].append(timed(lambda d=d: d.run(sys.executable, "-m", "flows", "--paper", args.paper)))
            print(f"repeat {i + 1}/{args.repeats} done", file=sys.stderr)

    base = statistics.median(rows["bare"])
    print(f"\n{args.paper}, smoke scale, median of {args.repeats} (seconds):\n")
    print(f"{'run':16s} {'median s':>9s} {'min s':>8s} {'ratio to bare':>14s}")
    for name, values in rows.items():
        med = statistics.median(values)
        print(f"{name:16s} {med:9.2f} {min(values):8.2f} {med / base:14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
