"""``paperops``: the command line that dvc.yaml calls, and that people call by hand.

    paperops list
    paperops validate [<paper> ...]  check params.yaml; record each paper's resolved config
    paperops prepare|train|evaluate|register <paper> [--scale S] [--params FILE]
    paperops build-block <block>    train (or import) a shared block into models/blocks/<block>
    paperops run <paper>            the paper's blocks if not built, then its four stages in one process
    paperops status                 one line per paper: gate verdict, version served
    paperops check-lock [--strict]  do the committed dvc.lock and reports/ agree with dvc.yaml, params.yaml?
    paperops report [--out DIR]     one report of every paper: reports/index.html and REPORT.md
    paperops serve <paper>          the BentoML HTTP service of the champion model
    paperops build <paper>          a Bento of that service with the model baked in, tested pins

Exit codes: 0 done, 2 invalid params.yaml or usage (nothing written), 1 a stage failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from components.config import SCALES, ConfigError, load_params
from components.registry import BLOCKS, PAPERS, config_model, get_paper

STAGE_HELP = {
    "prepare": "Build the paper's dataset into data/<paper>/ (default: data bundled with installed packages).",
    "train": "Train into models/<paper>/ (resumes from the last checkpoint after a crash).",
    "evaluate": "Evaluate models/<paper>/model; writes reports/<paper>/metrics.json, tables and figures.",
    "register": "Log the model to MLflow, register a version; move alias 'champion' if the gate passes "
    "(not in a DVC experiment, unless PAPEROPS_PROMOTE_EXPERIMENTS=1).",
}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("paper", choices=sorted(PAPERS), help="registered paper name (see `paperops list`)")
    p.add_argument(
        "--scale",
        choices=SCALES,
        default=None,
        help="override params.yaml's `scale` (smoke: seconds, default: a CPU, paper: the paper's settings)",
    )
    p.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paperops",
        description="Reproduce research papers as tracked, versioned, served pipelines. Each stage is an "
        "MLflow run in the paper's experiment; `dvc repro` runs the stages of every paper in params.yaml.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="List registered papers with arXiv id and title.")
    validate = sub.add_parser(
        "validate",
        help="Check params.yaml; write reports/<paper>/config.json for each paper named.",
        description="Validate the whole params file (every paper, every scale; exit 2 naming each bad key, "
        "nothing written). For each paper named, write its resolved config at the file's scale to "
        "reports/<paper>/config.json, rewritten only when it changes: the DVC stage validate@<paper>, "
        "which every later stage of the paper depends on, so an invalid params.yaml stops `dvc repro` "
        "before DVC deletes any output.",
    )
    validate.add_argument("papers", nargs="*", choices=sorted(PAPERS), metavar="paper", help="papers to record")
    validate.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    status = sub.add_parser(
        "status",
        help="One line per paper: gate passed or why not, and the version served.",
        description="After `dvc repro` (the end of `make run`): for each paper in params.yaml, the gate verdict "
        "of its last registration (reports/<paper>/registration.json) and the registry version with the alias "
        "'champion', which `paperops serve <paper>` serves.",
    )
    status.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    check = sub.add_parser(
        "check-lock",
        help="Check that the committed dvc.lock and reports/ agree with dvc.yaml and params.yaml.",
        description="For a clone without data (CI): dvc.lock and every cache: false output (reports/<paper>/*.json, "
        "results.csv, results.md) are committed; `dvc status` finds no stage whose command or params differ from "
        "the lock and no committed output that differs from it; each paper in papers: has its gate verdict and "
        "headline in metrics.json and a plot of its results.csv. Code changed since the lock is reported (a "
        "failure with --strict). Exit 0 coherent, 1 not.",
    )
    check.add_argument("--strict", action="store_true", help="also fail when code changed since dvc.lock")
    check.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    for stage, text in STAGE_HELP.items():
        _add_common(sub.add_parser(stage, help=text, description=text))
    block = sub.add_parser(
        "build-block",
        help="Build a trained shared block (e.g. the text-image model) into models/blocks/<block>.",
        description="Train (or import) a shared block that papers read (their config's USES_BLOCKS): the DVC "
        "stage build-block@<block>. Resumes from its checkpoints; writes reports/blocks/<block>/metrics.json.",
    )
    block.add_argument("block", choices=sorted(BLOCKS), help="registered block name")
    block.add_argument("--scale", choices=SCALES, default=None, help="override params.yaml's `scale`")
    block.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    run = sub.add_parser(
        "run",
        help="Run prepare, train, evaluate and register in one process.",
        description="All four stages of one paper in one process, without DVC or Prefect; first the shared "
        "blocks the paper uses, unless models/blocks/<block> is already built from the same config.",
    )
    _add_common(run)
    report = sub.add_parser(
        "report",
        help="Write one report of every paper: reports/index.html and reports/REPORT.md, with figures.",
        description="From what the pipeline left (reports/<paper>/, dvc.lock, git, the MLflow store) and the claims "
        "of components/report/claims.yaml: per paper the claim, the paper's number, ours, the classical baseline, the "
        "gate's verdict, the registered version, the commit, the data hashes and MLflow run links. Run the pipeline "
        "first (`make report` does). See components/report/.",
    )
    report.add_argument("--out", default=None, help="folder to write to (default: reports/)")
    report.add_argument(
        "--mlflow-ui",
        default=None,
        help="MLflow UI base URL of the run links (default: $PAPEROPS_MLFLOW_UI, else http://127.0.0.1:5000 "
        "as `make mlflow-ui` serves it)",
    )
    report.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    serve = sub.add_parser(
        "serve",
        help="Serve the champion model over HTTP with BentoML.",
        description="Start `bentoml serve` for the paper's service (serving/<paper>.py). "
        "The model is the registry version with alias 'champion' (or --version).",
    )
    serve.add_argument("paper", choices=sorted(PAPERS))
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s, loopback only)")
    serve.add_argument("--port", type=int, default=3000, help="port (default: %(default)s)")
    serve.add_argument("--version", default=None, help="serve this registry version instead of the champion")
    build = sub.add_parser(
        "build",
        help="Build a Bento of the paper's service with its model baked in.",
        description="Build a BentoML Bento of serving/<paper>.py that carries the model `paperops serve` would "
        "serve (the champion, or --version) and the tested pins of constraints.txt, without network (no lock "
        "resolution). Then `bentoml serve <paper>:latest` (127.0.0.1) or `bentoml containerize <paper>:latest` "
        "(the image binds 0.0.0.0). See serving/bento.py.",
    )
    build.add_argument("paper", choices=sorted(PAPERS))
    build.add_argument("--version", default=None, help="bake in this registry version instead of the champion")
    return parser


def bentoml_command() -> list[str]:
    """How to run BentoML from the interpreter running paperops: ``<venv>/bin/bentoml`` next to
    ``sys.executable`` (so ``.venv/bin/paperops serve`` works without an activated venv), else
    ``python -m bentoml``."""
    script = Path(sys.executable).parent / "bentoml"
    return [str(script)] if script.is_file() and os.access(script, os.X_OK) else [sys.executable, "-m", "bentoml"]


def _has_service(paper: str) -> bool:
    if (Path("serving") / f"{paper}.py").is_file():
        return True
    print(f"paperops: {paper} has no service (serving/{paper}.py)", file=sys.stderr)
    return False


def _build(args: argparse.Namespace) -> int:
    if not _has_service(args.paper):
        return 2
    cmd = [sys.executable, "-m", "serving.bento", args.paper, *(["--version", args.version] if args.version else [])]
    os.execv(cmd[0], cmd)  # serving/ imports bentoml, which components/ never does
    return 0  # pragma: no cover


def _serve(args: argparse.Namespace) -> int:
    if not _has_service(args.paper):
        return 2
    if args.version:
        os.environ["PAPEROPS_MODEL_VERSION"] = args.version
    from components.model_source import ModelUnavailable, model_dir

    try:  # fail before BentoML starts (the service process checks again and stops the server)
        model_dir(args.paper)
    except ModelUnavailable as exc:
        print(f"paperops: cannot serve {args.paper}: {exc}", file=sys.stderr)
        return 2
    cmd = [*bentoml_command(), "serve", f"serving.{args.paper}:Service", "--host", args.host, "--port", str(args.port)]
    print("paperops: " + " ".join(cmd), file=sys.stderr)
    os.execv(cmd[0], cmd)  # replaces this process: signals reach the server directly
    return 0  # pragma: no cover


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("alembic", "mlflow.store", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "list":
        for name in PAPERS:
            p = get_paper(name)
            print(f"{name:16s} arXiv {p.arxiv}  {p.title}")
        return 0
    if args.command == "serve":
        return _serve(args)
    if args.command == "build":
        return _build(args)
    try:
        params = load_params(args.params, scale=getattr(args, "scale", None))
        if args.command == "validate":
            from components.outputs import write_resolved_config

            for paper in args.papers:
                write_resolved_config(Path.cwd(), params, paper)
            return 0
        if args.command == "build-block":
            if args.block not in params.blocks:
                raise ConfigError(f"blocks.{args.block}: no section in {args.params} (add it under blocks:)")
        elif args.command not in ("status", "check-lock", "report") and args.paper not in params.sections:
            raise ConfigError(f"{args.paper}: no section in {args.params} (add `{args.paper}: {{}}` for the defaults)")
    except ConfigError as exc:
        print(f"paperops: invalid {args.params}:\n{exc}", file=sys.stderr)
        return 2
    if args.command == "status":
        from components.status import summary

        print("\n".join(summary(Path.cwd(), params)))
        return 0
    if args.command == "report":
        from components.report import mlflow_ui_base, write_report

        try:
            base = mlflow_ui_base(args.mlflow_ui)
        except ValueError as exc:
            print(f"paperops: {exc}", file=sys.stderr)
            return 2
        written = write_report(Path.cwd(), Path(args.out) if args.out else None, list(params.papers), base)
        print(f"report: {written.html}")
        print(f"report: {written.markdown}")
        return 0
    if args.command == "check-lock":
        from components.lockcheck import check

        report = check(Path.cwd(), params)
        for line in report.lines(args.strict):
            print(line)
        ok = report.ok(args.strict)
        print(
            "check-lock: " + ("coherent" if ok else "NOT coherent") + f" ({len(report.problems)} problems, "
            f"{len(report.stale)} stale)"
        )
        return 0 if ok else 1
    from components import distributed
    from components.stages import STAGES, run_block, run_stage

    if distributed.launched():  # torchrun: data-parallel training of one paper (components/distributed.py)
        if args.command == "train":
            get_paper(args.paper)  # imports the paper's code, which tells whether it is data-parallel
        if args.command != "train" or not distributed.supports(PAPERS[args.paper]):
            print(
                "paperops: under torchrun only `train <paper>` runs, for a paper whose trainer is data-parallel "
                "(its code calls components.distributed.reduce_gradients; README, 'Distributed training')",
                file=sys.stderr,
            )
            return 2
        owner = not distributed.active()  # else a caller joined the group and leaves it (tests)
        distributed.init()
        if not distributed.is_main():
            logging.getLogger().setLevel(logging.WARNING)
        try:
            run_stage("train", args.paper, params=params)
        finally:
            if owner:
                distributed.destroy()
        return 0
    if args.command == "build-block":
        metrics = run_block(args.block, params=params)
        print(f"block {args.block} built: " + ", ".join(f"{k} {v:.3g}" for k, v in sorted((metrics or {}).items())[:6]))
        return 0
    if args.command == "run":
        for used in config_model(args.paper).USES_BLOCKS:
            run_block(used, params=params, if_needed=True)
    stages = STAGES if args.command == "run" else (args.command,)
    if args.command == "run" and not os.environ.get("PAPEROPS_PIPELINE_ID"):
        # the four stage runs nest under one parent run in MLflow (components/tracking/pipeline.py)
        os.environ["PAPEROPS_PIPELINE_ID"] = f"paperops-run-{os.getpid()}-{os.urandom(4).hex()}"
    for stage in stages:
        result = run_stage(stage, args.paper, params=params)
        if stage == "register":
            print(f"{result['name']} version {result['version']} registered ({registration_verdict(result)})")
    return 0


def registration_verdict(record: dict) -> str:
    """``champion`` / ``gate passed, champion not moved (DVC experiment x)`` / ``gate failed: ...``."""
    if not record["gate_passed"]:
        return "gate failed, not champion: " + "; ".join(record["reasons"])
    if record["champion_moved"]:
        return "gate passed, now champion"
    where = f"DVC experiment {record['experiment']}" if record.get("experiment") else "not promoted"
    return f"gate passed, champion not moved ({where})"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
