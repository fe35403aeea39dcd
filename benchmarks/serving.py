"""Serving throughput and latency of /denoise against the bare in-process forward.

Starts `bentoml serve serving.noise2score:Service` on 127.0.0.1 for an exported model folder,
sends a fixed noisy 128x128 RGB PNG (noise=gaussian, level=25) at concurrency 1, 8 and 32 and
reports requests/s, p50 and p99 latency, next to `predict.denoise` called in this process on the
same image. Loopback only; request counts are bounded.

Run:  python benchmarks/serving.py --model-dir models/noise2score/model [--requests 200]
      (without --model-dir or $PAPEROPS_MODEL_DIR: the registry's champion from the MLflow store
      named by $MLFLOW_TRACKING_URI, else the project's own)
"""

from __future__ import annotations

import argparse
import io
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
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def noisy_png(size: int) -> tuple[bytes, np.ndarray]:
    from skimage import data

    clean = data.astronaut()[:size, 100 : 100 + size] / 255.0
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1)
    buf = io.BytesIO()
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue(), (np.round(noisy * 255) / 255).astype(np.float32)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model-dir",
        default=os.environ.get("PAPEROPS_MODEL_DIR"),
        help="exported model folder (default: $PAPEROPS_MODEL_DIR, else the registry champion)",
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads, here and in the server (default: the service's own "
        "choice, $PAPEROPS_TORCH_THREADS or half the cores)",
    )
    args = parser.parse_args()

    import torch

    from serving.common import torch_threads

    threads = args.threads or torch_threads()
    torch.set_num_threads(threads)

    from components.papers.noise2score.predict import denoise
    from components.registry import get_paper

    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "DO_NOT_TRACK": "1", "PAPEROPS_TORCH_THREADS": str(threads)}
    if args.model_dir:
        env["PAPEROPS_MODEL_DIR"] = str(Path(args.model_dir).resolve())
        model_dir = Path(args.model_dir)
    else:
        from components.tracking import fetch_model

        try:
            model_dir = fetch_model(ROOT, "noise2score")
        except LookupError as exc:  # no champion yet (its gate failed): say so instead of crashing
            print(
                f"serving benchmark skipped: {exc}. Pass --model-dir <exported folder> "
                "(or PAPEROPS_MODEL_DIR) to measure a registered version that is not champion.",
                file=sys.stderr,
            )
            return 0
    payload, noisy = noisy_png(args.size)

    model = get_paper("noise2score").load(model_dir)
    denoise(model, noisy, noise="gaussian", level=25)  # warm-up
    bare = []
    for _ in range(30):
        t = time.perf_counter()
        denoise(model, noisy, noise="gaussian", level=25)
        bare.append(time.perf_counter() - t)
    bare_p50 = statistics.median(bare)
    from serving.images import decode, encode_png

    edge = []  # the service's own work without HTTP: decode the PNG, denoise, encode the answer
    for _ in range(30):
        t = time.perf_counter()
        d = decode(payload)
        encode_png(denoise(model, d.pixels, noise="gaussian", level=25)["image"], d.mode)
        edge.append(time.perf_counter() - t)
    edge_p50 = statistics.median(edge)

    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"paperops-bench-serving-{port}.log", "wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "bentoml"),
            "serve",
            "serving.noise2score:Service",
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
        files = {"image": ("noisy.png", payload, "image/png")}
        form = {"noise": "gaussian", "level": "25"}
        with httpx.Client(timeout=120) as client:
            client.post(f"{url}/denoise", files=files, data=form)  # warm-up

            def one(_: int) -> tuple[float, int]:
                t = time.perf_counter()
                r = client.post(f"{url}/denoise", files=files, data=form)
                return time.perf_counter() - t, r.status_code

            for concurrency in (1, 8, 32):
                start = time.perf_counter()
                with ThreadPoolExecutor(concurrency) as pool:
                    results = list(pool.map(one, range(args.requests)))
                wall = time.perf_counter() - start
                lat = [t for t, code in results if code == 200]
                failed = Counter(c for _, c in results if c != 200)
                errors = ",".join(f"{n}x{code}" for code, n in sorted(failed.items()))
                rows.append((concurrency, len(lat) / wall, percentile(lat, 0.5), percentile(lat, 0.99), errors))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()

    print(
        f"\n/denoise, {args.size}x{args.size} RGB, gaussian level 25, {args.requests} requests per level, "
        f"{threads} torch thread(s), {os.cpu_count()} cores"
    )
    print(f"bare in-process denoise(): p50 {bare_p50 * 1000:.1f} ms ({1 / bare_p50:.1f} /s on one caller)")
    print(f"in-process PNG decode + denoise() + PNG encode: p50 {edge_p50 * 1000:.1f} ms\n")
    print(f"{'concurrency':>11s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'p50/bare':>9s} {'errors':>10s}")
    for c, rps, p50, p99, errors in rows:
        print(f"{c:11d} {rps:8.1f} {p50 * 1000:8.1f} {p99 * 1000:8.1f} {p50 / bare_p50:9.2f} {errors or '0':>10s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
