"""Serving throughput and latency of /denoise against the bare in-process forward.

Starts `bentoml serve serving.noise2score:Service` on 127.0.0.1 for an exported model folder,
sends a fixed noisy 128x128 RGB PNG (noise=gaussian, level=25) at concurrency 1, 8 and 32 and
reports requests/s, p50 and p99 latency, next to `predict.denoise` called in this process on the
same image. Loopback only; request counts are bounded.

Run:  python benchmarks/serving.py --model-dir models/noise2score/model [--requests 200]
      (without --model-dir: the registry's champion from the local MLflow store)
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
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=None, help="exported model folder (default: the registry champion)")
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args()

    from components.papers.noise2score.predict import denoise
    from components.registry import get_paper

    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "DO_NOT_TRACK": "1"}
    if args.model_dir:
        env["PAPEROPS_MODEL_DIR"] = str(Path(args.model_dir).resolve())
        model_dir = Path(args.model_dir)
    else:
        from components.tracking import fetch_model

        model_dir = fetch_model(ROOT, "noise2score")
    payload, noisy = noisy_png(args.size)

    model = get_paper("noise2score").load(model_dir)
    denoise(model, noisy, noise="gaussian", level=25)  # warm-up
    bare = []
    for _ in range(30):
        t = time.perf_counter()
        denoise(model, noisy, noise="gaussian", level=25)
        bare.append(time.perf_counter() - t)
    bare_p50 = statistics.median(bare)

    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "bentoml"), "serve", "serving.noise2score:Service", "--host", "127.0.0.1",
         "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
                print("server did not start", file=sys.stderr)
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
                errors = sum(code != 200 for _, code in results)
                rows.append((concurrency, len(lat) / wall, percentile(lat, 0.5), percentile(lat, 0.99), errors))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    print(f"\n/denoise, {args.size}x{args.size} RGB, gaussian level 25, {args.requests} requests per level")
    print(f"bare in-process denoise(): p50 {bare_p50 * 1000:.1f} ms ({1 / bare_p50:.1f} /s on one caller)\n")
    print(f"{'concurrency':>11s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'p50/bare':>9s} {'errors':>7s}")
    for c, rps, p50, p99, errors in rows:
        print(f"{c:11d} {rps:8.1f} {p50 * 1000:8.1f} {p99 * 1000:8.1f} {p50 / bare_p50:9.2f} {errors:7d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
