"""Serving throughput of /denoise as a share of the bare model's, measured side by side.

1. bare: ``predict.denoise`` called in this process on a fixed noisy 128x128 RGB image (noise
   gaussian, level 25), one caller, the service's torch threads: calls/s.
2. served: ``bentoml serve serving.noise2score:Service`` on 127.0.0.1 with the same model, the same
   image as a PNG upload, at concurrency 1, 8 and 32 (``--requests`` each, benchmarks/load.py):
   requests/s of the 200 answers, p50/p99 latency, every non-200 counted.
3. bare again, so that a change of the machine's load during the run shows (the share is taken
   against the mean of both bare rates).

The share ``served req/s / bare calls/s`` is the serving stack's efficiency: the HTTP server, the
multipart parsing and request guard, the PNG decode and encode and the thread hand-offs all fit in
around the forward. Goal: 0.8 or more at concurrency 32 with 0 non-200. Every line prints as it is
measured. Loopback only.

``--compare DIR`` serves the same model from another checkout's code too (e.g. main's), in
alternating rounds (``--rounds``), each server between two bare runs, at the last concurrency
only: the side-by-side comparison of two serving skeletons on one machine.

Run:  python benchmarks/serving.py [--model-dir models/noise2score/model] [--requests 200]
      python benchmarks/serving.py --model-dir M --compare ../main --rounds 3 --concurrency 32
      (without --model-dir or $PAPEROPS_MODEL_DIR: the registry's champion of the project's MLflow
      store, or $MLFLOW_TRACKING_URI's)
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load import BareResult, Request, bare_rate, measured, row, run_load, serve  # noqa: E402
from tests.http_server import bentoml_server  # noqa: E402


def noisy_png(size: int) -> tuple[bytes, np.ndarray]:
    from skimage import data

    clean = data.astronaut()[:size, 100 : 100 + size] / 255.0
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1)
    buf = io.BytesIO()
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue(), (np.round(noisy * 255) / 255).astype(np.float32)


def resolve_model(arg: str | None) -> Path | None:
    if arg:
        return Path(arg).resolve()
    from components.model_source import ModelUnavailable, model_dir

    try:
        return model_dir("noise2score")
    except ModelUnavailable as exc:
        print(
            f"serving benchmark skipped: {exc}\nPass --model-dir <exported folder> (or PAPEROPS_MODEL_DIR).",
            file=sys.stderr,
        )
        return None


def compare(args: argparse.Namespace, request: Request, env: dict[str, str], bare: Callable[[], BareResult]) -> int:
    """Alternate this checkout's server and ``--compare``'s, each between two bare runs."""
    checkouts = {"this": ROOT, "other": Path(args.compare).resolve()}
    full = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **env}
    full.pop("PYTHONPATH", None)  # each server imports its own checkout's code (its working directory)
    concurrency = args.concurrency[-1]
    for rnd in range(args.rounds):
        for name, cwd in checkouts.items():
            before = bare()
            log = Path(os.environ.get("TMPDIR", "/tmp")) / f"paperops-bench-{name}.log"
            with bentoml_server("serving.noise2score:Service", cwd, full, log) as url:
                run_load(url, [request], 10, 2)  # warm-up
                res = measured(url, [request], args.requests, concurrency)
            after = bare()
            base, cpu = (before.per_s + after.per_s) / 2, (before.cpu_s + after.cpu_s) / 2
            print(row(f"{name}", res, base, cpu) + f"   [round {rnd + 1}, {cwd}]", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=os.environ.get("PAPEROPS_MODEL_DIR"), help="exported model folder")
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: the service's)")
    parser.add_argument("--compare", default=None, help="another checkout whose serving code to measure alongside")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds with --compare")
    args = parser.parse_args()
    started = time.perf_counter()
    model_dir = resolve_model(args.model_dir)
    if model_dir is None:
        return 0

    import torch

    from components.papers.noise2score.predict import denoise
    from components.registry import get_paper
    from serving.common import torch_threads

    threads = args.threads or torch_threads()
    torch.set_num_threads(threads)
    payload, noisy = noisy_png(args.size)
    model = get_paper("noise2score").load(model_dir)
    print(
        f"/denoise, {args.size}x{args.size} RGB, gaussian level 25, {args.requests} requests per level, "
        f"{threads} torch thread(s), {os.cpu_count()} cores; model {model_dir}",
        flush=True,
    )

    def bare() -> BareResult:
        b = bare_rate(lambda: denoise(model, noisy, noise="gaussian", level=25))
        print(
            f"{'bare':>8s}       {b.per_s:7.1f} calls/s p50 {b.p50_s * 1000:7.1f} ms  CPU {b.cpu_s * 1000:.1f} ms/call "
            "(predict.denoise in this process)",
            flush=True,
        )
        return b

    request = Request.multipart(
        "/denoise", files={"image": ("noisy.png", payload, "image/png")}, data={"noise": "gaussian", "level": "25"}
    )
    env = {"PAPEROPS_MODEL_DIR": str(model_dir), "PAPEROPS_TORCH_THREADS": str(threads)}
    if args.compare:
        return compare(args, request, env, bare)
    first = bare()
    results = []
    with serve("serving.noise2score:Service", env, "noise2score") as url:
        run_load(url, [request], 10, 2)  # warm-up
        for c in args.concurrency:
            res = measured(url, [request], args.requests, c)
            results.append(res)
            print(row("served", res, first.per_s, first.cpu_s), flush=True)
    second = bare()
    base, cpu = (first.per_s + second.per_s) / 2, (first.cpu_s + second.cpu_s) / 2
    print(f"\nagainst the mean of both bare runs ({base:.1f} calls/s, {cpu * 1000:.1f} ms CPU per call):", flush=True)
    for res in results:
        print(row("served", res, base, cpu), flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
