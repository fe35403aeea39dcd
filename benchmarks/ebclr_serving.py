"""Batching of the EBCLR service: batch time in process, then /embed and /classify under load.

1. In process: the encoder's time on prepared batches of 1, 8, 32 and MAX_BATCH images.
2. Over HTTP (``bentoml serve serving.ebclr:Service`` on 127.0.0.1): ``--requests`` requests at
   concurrency 1 and 8 (and 32) to /embed (JSON batch of ``--images`` digits) and /classify (one
   digit), reporting requests/s, p50/p99 latency and the count of every non-200 status (429 is
   BentoML's max_concurrency, 503 its load shedding; the in-process MicroBatcher of
   serving/batching.py should give neither below max_concurrency).

Run:  python benchmarks/ebclr_serving.py --model-dir models/ebclr/model [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


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

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "DO_NOT_TRACK": "1", "PAPEROPS_MODEL_DIR": str(model_dir)}
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"paperops-bench-ebclr-{port}.log", "wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "bentoml"),
            "serve",
            "serving.ebclr:Service",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                print(f"server did not start; its log: {log.name}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        bodies = {
            "/embed": lambda i: {
                "arrays": digits[(i * args.images) % 1700 : (i * args.images) % 1700 + args.images].tolist()
            },
            "/classify": lambda i: {"array": digits[i % 1797].tolist()},
        }
        with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=64)) as client:
            for route, body in bodies.items():
                for i in range(5):  # warm-up (also trains BentoML's batching estimator)
                    client.post(f"{url}{route}", json=body(i))
                for concurrency in args.concurrency:

                    def one(i: int, route: str = route, body=body) -> tuple[float, int]:
                        t = time.perf_counter()
                        r = client.post(f"{url}{route}", json=body(i))
                        return time.perf_counter() - t, r.status_code

                    start = time.perf_counter()
                    with ThreadPoolExecutor(concurrency) as pool:
                        results = list(pool.map(one, range(args.requests)))
                    wall = time.perf_counter() - start
                    lat = [t for t, code in results if code == 200]
                    bad = Counter(c for _, c in results if c != 200)
                    rows.append(
                        (
                            route,
                            concurrency,
                            len(lat) / wall,
                            percentile(lat, 0.5),
                            percentile(lat, 0.99),
                            sum(bad.values()) / len(results),
                            ",".join(f"{n}x{c}" for c, n in sorted(bad.items())),
                        )
                    )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()

    print("\nencoder batch time in process (1 thread): " + ", ".join(f"{n}: {t * 1000:.1f} ms" for n, t in bt))
    print(
        f"service: in-process batches of at most {MAX_BATCH} images; {args.requests} requests per row, "
        f"/embed with {args.images} images each; {os.cpu_count()} cores\n"
    )
    print(f"{'route':>10s} {'conc':>5s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-200':>9s} {'errors':>10s}")
    for route, c, rps, p50, p99, rbad, errors in rows:
        print(f"{route:>10s} {c:5d} {rps:8.1f} {p50 * 1000:8.1f} {p99 * 1000:8.1f} {rbad:9.1%} {errors or '0':>10s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
