"""Identify the plant from the training signal with the configured algorithm (the registered model).

The filter runs through the signal in chunks of ``train.checkpoint_every`` samples; after each
chunk its state (weights, the previous weights for momentum, the squared-error curve so far) is
checkpointed, so a killed run resumes where it stopped and ends with the same weights.
"""

from __future__ import annotations

import numpy as np
import torch

from components.checkpoint import Checkpointer
from components.config import config_hash
from components.contract import RunContext
from components.papers.fractional_lms.algorithms import adapt, regressors, rule
from components.papers.fractional_lms.config import FractionalLMSConfig
from components.papers.fractional_lms.data import load_train
from components.papers.fractional_lms.model import save
from components.papers.fractional_lms.predict import mse_curve_db


def algorithm_steps(cfg: FractionalLMSConfig) -> tuple[float, float]:
    """(mu, mu_f) of the training algorithm: the normalised steps for NLMS / FNLMS."""
    if cfg.train.algorithm in ("nlms", "fnlms"):
        return cfg.steps.nlms_mu, cfg.steps.nlms_mu_f
    return cfg.steps.mu, cfg.steps.mu_f


def train(cfg: FractionalLMSConfig, ctx: RunContext) -> None:
    """Run the adaptive filter over ``data/fractional_lms/train.npz``; export the identified system."""
    t = cfg.train
    x, d, plant = load_train(ctx.data_dir)
    mu, mu_f = algorithm_steps(cfg)
    r = rule(t.algorithm, mu, mu_f, t.order, cfg.steps.momentum, cfg.steps.eps)
    xr = regressors(x[None], t.taps)
    w_true = None
    if plant is not None and len(plant) == t.taps:
        w_true = plant

    ckpt = Checkpointer(ctx.checkpoint_dir, config_hash(cfg, exclude={"device"}))
    state = ckpt.latest()
    start = 0
    w = w_prev = np.zeros(t.taps)
    squared: list[np.ndarray] = []
    if state is not None:
        start = int(state["step"])
        w, w_prev = state["state"]["w"].numpy(), state["state"]["w_prev"].numpy()
        squared = [state["state"]["squared_error"].numpy()]
        ctx.log.info("resuming %s at sample %d", t.algorithm, start)

    chunks = list(range(start, len(x), t.checkpoint_every))
    for begin in ctx.progress(chunks, total=len(chunks), desc=f"identify ({t.algorithm})"):
        end = min(begin + t.checkpoint_every, len(x))
        out = adapt(xr[:, begin:end], d[None, begin:end], r, w_true, w0=w, w_prev0=w_prev)
        if out.first_nonfinite[0, 0] >= 0:
            raise FloatingPointError(
                f"{t.algorithm} diverged at sample {begin + int(out.first_nonfinite[0, 0])}: non-finite weights "
                "(the published form on a negative weight, or a step too large)"
            )
        w, w_prev = out.weights[0, 0], out.prev_weights[0, 0]
        squared.append(out.mse[0])
        metrics = {"train/mse_db": float(10 * np.log10(np.mean(out.mse[0]) + 1e-300))}
        if out.msd is not None:
            metrics["train/msd_db"] = float(10 * np.log10(out.msd[0, -1] + 1e-300))
        ctx.logger.log_metrics(metrics, step=end)
        ckpt.save(
            end,
            {
                "w": torch.from_numpy(w.copy()),
                "w_prev": torch.from_numpy(w_prev.copy()),
                "squared_error": torch.from_numpy(np.concatenate(squared)),
            },
            cfg.model_dump(mode="json"),
        )

    curve = np.concatenate(squared) if squared else np.zeros(0)
    final_db = mse_curve_db(curve)[-1] if len(curve) else float("nan")
    save(
        ctx.model_dir,
        w,
        {
            "algorithm": t.algorithm,
            "taps": t.taps,
            "order": t.order,
            "mu": mu,
            "mu_f": mu_f,
            "momentum": cfg.steps.momentum,
            "samples": len(x),
            "final_mse_db": final_db,
            "plant": None if plant is None else plant.tolist(),
        },
    )
    np.save(ctx.model_root / "train_squared_error.npy", curve)
    ctx.log.info("identified %d taps with %s: final MSE %.2f dB", t.taps, t.algorithm, final_db)
