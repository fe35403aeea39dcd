"""``python -m flows [--paper NAME | --papers A,B] [--parallel [--dask-address tcp://HOST:8786]] [--root DIR]``:
run the pipeline as a Prefect flow.

Without a Prefect server this runs in ephemeral mode; point PREFECT_API_URL at a server
(`prefect server start`) to watch it in the UI.
"""

from __future__ import annotations

import argparse
import sys

from flows.pipeline import all_papers, paper_pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows",
        description="Run the DVC pipeline as Prefect flows: one task per DVC stage (prepare, train, "
        "evaluate, register). Stages DVC finds up to date are skipped.",
    )
    parser.add_argument("--paper", default=None, help="one paper (default: every paper in params.yaml)")
    parser.add_argument("--papers", default=None, help="comma-separated papers for the all-papers flow")
    parser.add_argument("--root", default=".", help="project checkout to run in (default: %(default)s)")
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="all papers at once, each in its own checkout, on a Dask task runner (README, Scale-out)",
    )
    parser.add_argument(
        "--dask-address", default=None, help="Dask scheduler (tcp://host:8786); default: a local cluster"
    )
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.paper:
        state = paper_pipeline(args.paper, args.root, return_state=True)
    else:
        papers = [p for p in args.papers.split(",") if p] if args.papers else None
        state = all_papers(
            args.root,
            papers=papers,
            parallel=args.parallel,
            dask_address=args.dask_address,
            workers=args.workers,
            return_state=True,
        )
    if not state.is_completed():
        print(f"{state.name}: {state.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
