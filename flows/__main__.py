"""``python -m flows [--paper NAME] [--root DIR]``: run the pipeline as a Prefect flow.

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
    parser.add_argument("--root", default=".", help="project checkout to run in (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.paper:
        paper_pipeline(args.paper, args.root)
    else:
        all_papers(args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
