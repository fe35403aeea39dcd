"""Train the registered neuron: the gradient-flow limit on ``data/relu_neuron/train.npz``.

The flow is integrated exactly (flow.py) in well under a second, so there is no intermediate state
worth checkpointing; the trajectory's norm and loss are logged against time.
"""

from __future__ import annotations

import numpy as np

from components.contract import RunContext
from components.papers.relu_neuron.analysis import measure
from components.papers.relu_neuron.config import ReluNeuronConfig
from components.papers.relu_neuron.data import init_weights, load_split
from components.papers.relu_neuron.flow import gradient_flow, loss, single_threaded_blas
from components.papers.relu_neuron.model import save


def train(cfg: ReluNeuronConfig, ctx: RunContext) -> None:
    x, y = load_split(ctx.data_dir, "train")
    rng = np.random.default_rng([cfg.seed, 99])
    w0 = init_weights(x.shape[1], cfg.train.init_scale, rng)
    with single_threaded_blas():
        flow = gradient_flow(x, y, w0, t_max=cfg.experiments.t_max, grad_tol=cfg.experiments.grad_tol)
    stride = max(1, len(flow.t) // 200)
    for k in range(0, len(flow.t), stride):
        ctx.logger.log_metrics(
            {
                "train/norm": float(np.linalg.norm(flow.w[k])),
                "train/loss": loss(flow.w[k], x, y),
                "train/time": float(flow.t[k]),
            },
            step=k,
        )
    stats = measure(flow, x, y, None)
    save(
        ctx.model_dir,
        flow.w_final,
        {
            "d": int(x.shape[1]),
            "n": int(x.shape[0]),
            "init_scale": cfg.train.init_scale,
            "data": cfg.train.data,
            "converged": flow.converged,
            "events": len(flow.event_times),
            "final_loss": stats["final_loss"],
            "support_vectors": np.flatnonzero(x @ flow.w_final > 0).tolist(),
            "norm_monotone": bool(stats["norm_monotone"]),
        },
    )
    ctx.log.info(
        "neuron trained: loss %.3g, %d pattern changes, converged=%s",
        stats["final_loss"],
        len(flow.event_times),
        flow.converged,
    )
