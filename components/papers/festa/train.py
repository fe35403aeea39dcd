"""Training: FeSTA (server here, clients as processes) and the three baselines, once per paired seed.

The runs are ``[(method, seed)]`` for the seeds ``seed, seed + 1, ...`` (``eval.seeds``) and the
methods of ``eval.methods``. FeSTA's runs go one after another in this process (server.py), its
clients as separate processes; the baselines (baselines.py, in-process: they are not the split
protocol) run meanwhile in a pool of two worker processes, one torch thread each, so that the two
cores of a laptop both work. Every finished run is written atomically to
``models/festa/runs/<config hash>/<method>_s<seed>.safetensors`` (+ ``.json``: bytes per round,
parameters, CPU seconds, loss curve) and is not trained again.

A FeSTA run checkpoints every ``checkpoint_every`` rounds (components.checkpoint, the server's and
every client's state); after a crash or ``kill -9`` rerunning ``train`` skips the finished runs,
resumes the open FeSTA run from its last checkpoint and retrains an unfinished baseline from its
start: every draw is seeded, so the result equals an uninterrupted run (CPU, tested). The exported
model (``models/festa/model``, what is registered and served) is FeSTA's run at the first seed.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from components.checkpoint import Checkpointer, export_model
from components.config import config_hash
from components.contract import RunContext
from components.outputs import write_json_atomic
from components.papers.festa.baselines import parameter_counts, train_central, train_separate
from components.papers.festa.config import FeSTAConfig
from components.papers.festa.data import as_tensors, client_list
from components.papers.festa.model import model_config
from components.papers.festa.server import FeSTAServer, process_context
from components.workers import process_pool

log = logging.getLogger("paperops.festa")


def seeds(cfg: FeSTAConfig) -> list[int]:
    return [cfg.seed + i for i in range(cfg.eval.seeds)]


def run_name(method: str, seed: int) -> str:
    return f"{method}_s{seed}"


def train_settings(cfg: FeSTAConfig) -> dict[str, Any]:
    """The plain dict of training settings the server, the clients and the baselines share."""
    return {**cfg.train.model_dump(mode="json"), "dice_weight": cfg.train.seg_dice_weight}


def runs_dir(cfg: FeSTAConfig, ctx: RunContext) -> Path:
    return ctx.model_root / "runs" / config_hash(cfg, exclude={"device"})


def client_files(cfg: FeSTAConfig, ctx: RunContext) -> list[tuple[str, Path]]:
    return [
        (task, ctx.data_dir / f"client_{task}_{k}.npz")
        for task, k in client_list(cfg.train.tasks, cfg.data.clients_per_task)
    ]


def _write_run(folder: Path, name: str, state: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """``<name>.safetensors`` then ``<name>.json`` (the json marks the run finished), each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(folder / f"{name}.safetensors")
    write_json_atomic(folder / f"{name}.json", info)


def finished(folder: Path, name: str) -> bool:
    return (folder / f"{name}.json").is_file() and (folder / f"{name}.safetensors").is_file()


def load_run(folder: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    return load_file(str(folder / f"{name}.safetensors")), json.loads((folder / f"{name}.json").read_text())


# ----------------------------------------------------------------------------------- baselines
def baseline_job(
    method: str, seed: int, files: list[tuple[str, str]], mc: dict[str, Any], t: dict[str, Any], device: str
) -> Any:
    """One baseline run in a worker process (``device``: where it computes): ``(state, info)``."""
    torch.set_num_threads(int(t["threads"]))
    start = time.process_time()
    clients = []
    for task, path in files:
        with np.load(path, allow_pickle=False) as f:
            clients.append((task, as_tensors({k: f[k] for k in f.files})))
    curve: dict[str, list[float]] = {}

    def record(step: int, losses: dict[str, float]) -> None:
        for k, v in losses.items():
            curve.setdefault(f"loss/{k}", []).extend([float(step), v])

    dev = torch.device(device)
    if method == "central":
        state, stats = train_central(clients, mc, t, seed, dev, record)
    else:
        state, stats = train_separate(clients, mc, t, seed, method == "fedavg", dev, record)
    return state, {**stats, "history": curve, "cpu_s": time.process_time() - start}


# ---------------------------------------------------------------------------------------- FeSTA
def _festa_run(cfg: FeSTAConfig, ctx: RunContext, seed: int, folder: Path, index: int, die_at: Any = None) -> Any:
    """One FeSTA run with its own checkpoints (resumed when there are some of this config and seed)."""
    t = train_settings(cfg)
    total = cfg.train.rounds + cfg.train.finetune_rounds
    ckpt = Checkpointer(ctx.checkpoint_dir / run_name("festa", seed), config_hash(cfg, exclude={"device"}))
    snapshot = cfg.model_dump(mode="json")
    resumed = ckpt.latest()
    server = FeSTAServer(client_files(cfg, ctx), model_config(cfg), t, seed, ctx.device, die_at)
    offset = index * total  # the run's rounds on the stage's global step axis (MLflow)

    def on_round(rnd: int, losses: dict[str, float], sent: int) -> None:
        metrics = {f"festa_s{seed}/loss_{k}": v for k, v in losses.items()}
        metrics[f"festa_s{seed}/bytes"] = float(sent)
        ctx.logger.log_metrics(metrics, step=offset + rnd)

    start = time.process_time()
    try:
        server.start(resumed["state"] if resumed else None)
        if resumed:
            log.info("festa seed %d: resuming from round %d of %d", seed, server.round, total)
        server.run(
            save=lambda rnd, state: ckpt.save(offset + rnd, state, snapshot),
            progress=lambda it: ctx.progress(it, total=total, desc=f"festa seed {seed}", initial=server.round),
            on_round=on_round,
        )
        client_cpu = server.client_cpu()
    finally:
        server.close()
    info = {
        **server.rounds_bytes(),
        "bytes": dict(server.bytes),
        "dropped": server.dropped,
        "history": server.history,
        "cpu_s": time.process_time() - start + client_cpu,
        "cpu_s_server": time.process_time() - start,
        "cpu_s_clients": client_cpu,
    }
    _write_run(folder, run_name("festa", seed), server.export(), info)
    ckpt.clear()  # the run is in runs/ now; its checkpoints are done with


def train(cfg: FeSTAConfig, ctx: RunContext, die_at: dict[int, tuple[int, str]] | None = None) -> None:
    """Train (or resume) every run of every seed; export FeSTA's first seed as the model.

    ``die_at`` (tests only) kills FeSTA clients: ``{client: (round, "start" | "mid")}``.
    """
    torch.set_num_threads(cfg.train.threads)
    folder = runs_dir(cfg, ctx)
    mc, t = model_config(cfg), train_settings(cfg)
    files = [(task, str(p)) for task, p in client_files(cfg, ctx)]
    todo = [(m, s) for s in seeds(cfg) for m in cfg.eval.methods if not finished(folder, run_name(m, s))]
    baselines = [(m, s) for m, s in todo if m != "festa"]
    pending: dict[tuple[str, int], Future[Any]] = {}
    pool = process_pool(2, mp_context=process_context()) if baselines else None
    try:
        for m, s in baselines:
            assert pool is not None
            pending[(m, s)] = pool.submit(baseline_job, m, s, files, mc, t, str(ctx.device))
        runs = [(m, s) for s in seeds(cfg) for m in cfg.eval.methods]
        for m, s in ctx.progress([r for r in todo if r[0] == "festa"], desc="festa runs"):
            _festa_run(cfg, ctx, s, folder, runs.index((m, s)), die_at)
        for (m, s), fut in ctx.progress(list(pending.items()), desc="baselines"):
            state, info = fut.result()
            _write_run(folder, run_name(m, s), state, info)
            _log_curve(
                ctx,
                info["history"],
                run_name(m, s),
                runs.index((m, s)) * (cfg.train.rounds + cfg.train.finetune_rounds),
            )
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    _export(cfg, ctx, folder)


def _log_curve(ctx: RunContext, history: dict[str, list[float]], name: str, offset: int) -> None:
    """A baseline's loss curve (computed in a worker) onto the stage's global step axis."""
    by_step: dict[int, dict[str, float]] = {}
    for key, flat in history.items():
        for step, value in zip(flat[0::2], flat[1::2], strict=True):
            by_step.setdefault(offset + int(step), {})[f"{name}/{key.removeprefix('loss/')}"] = value
    for step, metrics in sorted(by_step.items()):
        ctx.logger.log_metrics(metrics, step=step)


def _export(cfg: FeSTAConfig, ctx: RunContext, folder: Path) -> None:
    """FeSTA at the first seed -> ``models/festa/model`` (model.safetensors + config.json)."""
    state, info = load_run(folder, run_name("festa", cfg.seed))
    meta = {
        "paper": "festa",
        "model": model_config(cfg),
        "tasks": list(cfg.train.tasks),
        "seed": cfg.seed,
        "bytes_per_round": info["bytes_per_round"],
        "params": parameter_counts(model_config(cfg), list(cfg.train.tasks)),
    }
    export_model(ctx.model_dir, state, meta)
