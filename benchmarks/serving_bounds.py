"""Do the worst requests the services allow fit their time budgets? (in process, no server)

1. relu_neuron /analyze: the gradient flow on 200 x 200 data at the service's value bound
   (|x| <= 5, init_scale 100; Gaussian and +-bound data) and, for contrast, at larger scales the
   old bound allowed (|x| ~ 10, 30, 1e5), each stopped at the service's budget (45 s) by the same
   ``should_stop`` the service passes.
2. ccdf: one network evaluation of the default-scale U-Net on 256x256 (grey, and RGB as a batch of
   3), the seconds per pixel-NFE, and the worst request ``predict.MAX_WORK`` allows against the
   96 s budget (random weights: the cost of a forward does not depend on their values).

Run:  python benchmarks/serving_bounds.py [--skip-relu] [--skip-ccdf]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def relu_case(name: str, x: np.ndarray, y: np.ndarray, budget: float) -> None:
    from components.papers.relu_neuron.predict import analyze

    start, cpu = time.monotonic(), time.process_time()
    try:
        out = analyze(x, y, 100.0, 0, should_stop=lambda: time.monotonic() > start + budget)
        print(
            f"  {name:34s} finished in {time.monotonic() - start:6.1f} s wall, {time.process_time() - cpu:6.1f} s CPU "
            f"(converged {out['converged']}, {out['pattern_changes']} pattern changes)"
        )
    except TimeoutError as exc:
        print(
            f"  {name:34s} stopped at the budget after {time.monotonic() - start:6.1f} s wall, "
            f"{time.process_time() - cpu:6.1f} s CPU ({exc})"
        )


def relu(budget: float) -> None:
    from serving.relu_neuron import MAX_ANALYZE_VALUE as bound

    rng = np.random.default_rng(0)
    print(f"relu_neuron /analyze, 200 x 200, init_scale 100, budget {budget:.0f} s:")
    relu_case(
        f"Gaussian sd {bound / 3:g} clipped to {bound:g}",
        np.clip(bound / 3 * rng.standard_normal((200, 200)), -bound, bound),
        np.clip(bound / 3 * rng.standard_normal(200), -bound, bound),
        budget,
    )
    relu_case(
        f"+-{bound:g} everywhere",
        bound * rng.choice([-1.0, 1.0], (200, 200)),
        bound * rng.choice([-1.0, 1.0], 200),
        budget,
    )
    for scale in (10.0, 30.0, 1e5):  # outside the bound now: what it used to allow
        x = scale * (1 + 0.01 * rng.standard_normal((200, 200))) * rng.choice([-1, 1], (200, 200))
        relu_case(f"|x| ~ {scale:g} (refused now)", x, scale * np.abs(1 + 0.01 * rng.standard_normal(200)), budget)


def ccdf(budget: float) -> None:
    import torch
    import yaml

    from components.blocks.diffusion.unet import build_eps_unet, eps_fn
    from components.papers.ccdf.predict import MAX_WORK
    from serving.common import torch_threads

    torch.set_num_threads(torch_threads())
    model = yaml.safe_load((ROOT / "params.yaml").read_text())["ccdf"]["default"]["model"]
    keys = ("block_out_channels", "layers_per_block", "attention", "norm_num_groups")
    unet = build_eps_unet({"channels": 1, **{k: model[k] for k in keys}}).eval()
    eps = eps_fn(unet)
    print(f"ccdf, default-scale U-Net {model['block_out_channels']}, {torch.get_num_threads()} thread(s):")
    per_pixel = []
    for batch in (1, 3):
        x, t = torch.randn(batch, 1, 256, 256), torch.full((batch,), 500)
        with torch.no_grad():
            eps(x, t)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                eps(x, t)
                times.append(time.perf_counter() - start)
        sec = sorted(times)[1]
        per_pixel.append(sec / (batch * 256 * 256))
        print(f"  one NFE on {batch} x 256 x 256: {sec:.2f} s")
    worst = MAX_WORK * max(per_pixel)
    print(
        f"  {max(per_pixel):.2e} s per pixel-NFE; the worst allowed request ({MAX_WORK} pixel-NFEs) ~ {worst:.0f} s "
        f"against the {budget:.0f} s budget ({'fits' if worst < budget else 'does NOT fit'})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-relu", action="store_true")
    parser.add_argument("--skip-ccdf", action="store_true")
    args = parser.parse_args()
    from serving.ccdf import CCDF
    from serving.relu_neuron import ReluNeuron

    if not args.skip_relu:
        relu(ReluNeuron.inner.BUDGET_S)
    if not args.skip_ccdf:
        ccdf(CCDF.inner.BUDGET_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
