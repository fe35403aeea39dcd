"""CCDF vs 1000-step sampling from noise: network evaluations and wall time per reconstruction.

Both run in this one process on the same model, device, image and data-consistency map, so the
ratio of their times is the paper's speed-up (ideally NFE_1000 / NFE_CCDF = 1000 / N'). On CUDA the
forward runs under float16 autocast (the GPU path with AMP); on CPU in float32.

Run:  python benchmarks/ccdf.py --model-dir models/ccdf/model [--batch 1] [--repeats 3] [--threads 1]
      (without --model-dir or $PAPEROPS_MODEL_DIR: models/ccdf/model of this project)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.papers.ccdf.config import TaskConfig  # noqa: E402
from components.papers.ccdf.model import load  # noqa: E402
from components.papers.ccdf.solver import ccdf, from_noise, n_prime  # noqa: E402
from components.papers.ccdf.tasks import simple_init, simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("PAPEROPS_MODEL_DIR", ROOT / "models/ccdf/model"))
    )
    ap.add_argument("--batch", type=int, default=1, help="images per reconstruction call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--full-steps", type=int, default=1000)
    ap.add_argument("--tasks", default="sr,inpaint,mri")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load(args.model_dir)
    model.unet.to(device)
    for net in model.init_nets.values():
        net.to(device)
    s = model.config["sampling"]
    size, steps, t0 = int(model.config["size"]), int(s["steps"]), float(s["t0"])
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else contextlib.nullcontext()
    print(
        f"device {device} (AMP {'on' if device.type == 'cuda' else 'off'}), threads {args.threads}, "
        f"image {size}x{size}, "
        f"batch {args.batch}, N={steps}, t0={t0} -> N'={n_prime(t0, steps)}"
    )
    print(f"{'task':8s} {'method':22s} {'NFE':>6s} {'s/recon (median)':>17s} {'speed-up':>9s}")
    for task in args.tasks.split(","):
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(args.batch, 1, size, size, generator=gen) * 2 - 1
        op, y = simulate(task, x, TaskConfig(**model.config["task"]), gen)
        y = y.to(device)
        x0_hat = (
            model.initialise(task, simple_init(task, op, y)) if task in model.init_nets else simple_init(task, op, y)
        )

        def timed(fn):
            times, nfe = [], 0
            for _ in range(args.repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                with amp:
                    _, nfe = fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            return nfe, statistics.median(times)

        runs = {
            "CCDF (network init)": timed(
                lambda x0_hat=x0_hat, op=op, y=y, gen=gen: ccdf(
                    model.eps, x0_hat, op, y, model.abar, steps=steps, t0=t0, generator=gen
                )
            ),
            f"from noise, N={args.full_steps}": timed(
                lambda x=x, op=op, y=y, gen=gen: from_noise(
                    model.eps, tuple(x.shape), op, y, model.abar, steps=args.full_steps, generator=gen, device=device
                )
            ),
        }
        base = runs[f"from noise, N={args.full_steps}"][1]
        for name, (nfe, sec) in runs.items():
            print(f"{task:8s} {name:22s} {nfe:6d} {sec:17.3f} {base / sec:8.1f}x")


if __name__ == "__main__":
    main()
