"""Batching of the EBCLR service: batch time in process, then /embed and /classify under load.

1. In process: the encoder's time on prepared batches of 1, 8, 32 and MAX_BATCH images.
2. Over HTTP (``bentoml serve serving.ebclr:Service`` on 127.0.0.1, the load loop of
   benchmarks/load.py): ``--requests`` requests at concurrency 1, 8 and 32 to /embed (JSON batch
   of ``--images`` digits) and /classify (one digit), reporting requests/s, p50/p99 latency, the
   server's CPU per request and the count of every non-200 status (429 is BentoML's
   max_concurrency, 503 its load shedding; the in-process MicroBatcher of serving/batching.py
   should give neither below max_concurrency). Every line prints as it is measured.

Run:  python benchmarks/ebclr_serving.py --model-dir models/ebclr/model [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load import Request, measured, row, run_load, serve  # noqa: E402


def batch_times(model_dir: Path) -> list[tuple[int, float]]:
    """Median seconds of ``predict.encode`` on prepared batches of several sizes (one thread)."""
    import torch

    from components.papers.ebclr.model import load
    from components.papers.ebclr.predict import encode
    from serving.ebclr import MAX_BATCH

    torch.set_num_threads(1)
    model = load(model_dir)
    out = []
    for n in (1, 8, 32, MAX_BATCH):
        x = torch.rand(n, model.in_channels, model.image_size, model.image_size) * 2 - 1
        encode(model, x)
        times = []
        for _ in range(10):
            t = time.perf_counter()
            encode(model, x)
            times.append(time.perf_counter() - t)
        out.append((n, statistics.median(times)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model-dir",
        default=os.environ.get("PAPEROPS_MODEL_DIR"),
        required=False,
        help="exported model folder (default: $PAPEROPS_MODEL_DIR)",
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint and concurrency")
    parser.add_argument("--images", type=int, default=4, help="images per /embed request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    if not args.model_dir:
        parser.error("--model-dir (or $PAPEROPS_MODEL_DIR) is required")
    model_dir = Path(args.model_dir).resolve()

    from sklearn.datasets import load_digits

    from serving.ebclr import MAX_BATCH

    digits = (load_digits().images / 16.0).astype(np.float32)
    bt = batch_times(model_dir)
    print("encoder batch time in process (1 thread): " + ", ".join(f"{n}: {t * 1000:.1f} ms" for n, t in bt))
    print(
        f"service: in-process batches of at most {MAX_BATCH} images; {args.requests} requests per row, "
        f"/embed with {args.images} images each; {os.cpu_count()} cores",
        flush=True,
    )
    bodies = {
        "/embed": [
            Request.json("/embed", {"arrays": digits[(i * args.images) % 1700 :][: args.images].tolist()})
            for i in range(50)
        ],
        "/classify": [Request.json("/classify", {"array": digits[i].tolist()}) for i in range(50)],
    }
    with serve("serving.ebclr:Service", {"PAPEROPS_MODEL_DIR": str(model_dir)}, "ebclr") as url:
        for route, requests in bodies.items():
            run_load(url, requests, 5, 1)  # warm-up
            for concurrency in args.concurrency:
                print(row(route, measured(url, requests, args.requests, concurrency)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
