"""Training: every (seed, batch size, method) run for the same number of optimiser steps, with snapshots.

The plan is ``[(method, B, seed) for seed in seeds for B in batch_sizes for method in methods]``,
trained one after another, or ``train.workers`` at a time in worker processes (the same weights).
A run makes ``steps`` optimiser steps (``train.steps``, the same for every method and batch size:
the comparison is at matched steps; or, with ``train.steps: 0``, ``epochs`` x ``ceil(N / B)``
steps as the paper counts them, libs/ebclr.py ``epoch_n_iter``; a last batch of one image is
dropped). Batches walk through a fresh permutation of the training images per epoch, two
augmented views per image.

Random streams, so that comparisons are paired and runs independent:

* data (permutation and views) and initialisation are seeded by ``(seed, seed of the run, B)`` only:
  at one seed and batch size, EBCLR and its lambda2 = 0 ablation start from the same weights and see
  the same views in the same order, so their difference is the generative term's; SimCLR and MoCo
  see the same views too;
* a method's own draws (SGLD noise, buffer, queue) come from a stream of its own;
* no stream depends on another run, so a run is the same whatever was trained before it.

``snapshots`` encoders per run, evenly spaced in steps, plus step 0 (the random initialisation, the
evaluation's floor), are written to ``models/ebclr/runs/<method>_b<B>_s<seed>/step-XXXXXX.safetensors``;
after each snapshot a checkpoint of the run (its nets, optimiser, buffer or queue, both generators,
the permutation and its history; in ``checkpoints/<run>/``) is saved, so a killed run resumes at its
last snapshot and ends with exactly the weights of an uninterrupted run (CPU, same seed).

At the end the served model is exported: the first method's (EBCLR's) encoder at the first batch
size and the first seed, with a linear probe fitted on its frozen features of the training split.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import time
from collections.abc import Callable
from concurrent.futures import as_completed
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import save_file

from components.blocks.metrics.probe import embed, fit_linear_probe
from components.checkpoint import Checkpointer
from components.config import config_hash
from components.contract import RunContext
from components.distributed import active, is_main
from components.papers.ebclr.config import EBCLRPaperConfig
from components.papers.ebclr.data import Split, augment, class_names, load, to_input
from components.papers.ebclr.methods import build_method
from components.papers.ebclr.model import build_encoder, export
from components.workers import process_pool


class Run(NamedTuple):
    method: str
    batch_size: int
    seed: int

    @property
    def name(self) -> str:
        return run_name(self.method, self.batch_size, self.seed)


def plan(cfg: EBCLRPaperConfig) -> list[Run]:
    """Every run, in training order."""
    t = cfg.train
    return [Run(m, b, s) for s in t.seeds for b in t.batch_sizes for m in t.methods]


def run_name(method: str, batch_size: int, seed: int) -> str:
    return f"{method}_b{batch_size}_s{seed}"


def snapshot_path(model_root: Path, run: Run, step: int) -> Path:
    return Path(model_root) / "runs" / run.name / f"step-{step:06d}.safetensors"


def _save_snapshot(path: Path, encoder: torch.nn.Module) -> None:
    if not is_main():  # torchrun: rank 0 writes
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}, str(tmp))
    tmp.replace(path)


def load_snapshot(path: Path, method: str, in_channels: int, width: int) -> torch.nn.Module:
    """An encoder from a snapshot (safetensors), in eval mode."""
    from safetensors.torch import load_file

    enc = build_encoder(method, in_channels, width)
    enc.load_state_dict(load_file(str(path)))
    return enc.eval()


def set_cpu_threads(cfg: EBCLRPaperConfig, device: torch.device) -> None:
    """Pin torch's intra-op threads on CPU (``train.cpu_threads``; see its description)."""
    if device.type == "cpu" and cfg.train.cpu_threads:
        torch.set_num_threads(cfg.train.cpu_threads)


def steps_per_epoch(n: int, batch_size: int, cap: int) -> int:
    steps = math.ceil(n / batch_size)
    if n % batch_size == 1:
        steps -= 1  # a last batch of one image has no negatives
    return min(steps, cap) if cap else steps


def run_steps(cfg: EBCLRPaperConfig, n: int, batch_size: int) -> int:
    """Optimiser steps of a run: ``train.steps`` (matched across batch sizes) or ``epochs`` full passes."""
    t = cfg.train
    return t.steps or t.epochs * steps_per_epoch(n, batch_size, t.max_steps_per_epoch)


def snapshot_steps(total: int, snapshots: int) -> list[int]:
    """``[0, ..., total]``: step 0 and ``snapshots`` evenly spaced steps (fewer when ``total`` is small)."""
    return sorted({round(i * total / snapshots) for i in range(snapshots + 1)})


def _seed(cfg: EBCLRPaperConfig, run: Run) -> int:
    """The (global seed, run seed, batch) stream: data order, views, initialisation. Not the method."""
    return (cfg.seed * 1_000_003 + run.seed * 10_007 + run.batch_size) % (2**62)


class _Where(NamedTuple):
    """Where a run reads, writes and computes: the step context's part that crosses a process boundary."""

    model_root: Path
    checkpoint_dir: Path
    device: str
    use_amp: bool


def _units(cfg: EBCLRPaperConfig, n: int, run: Run) -> int:
    """Snapshot intervals of a run: the units it is trained and checkpointed in."""
    return len(snapshot_steps(run_steps(cfg, n, run.batch_size), cfg.train.snapshots)) - 1


def _checkpointer(cfg: EBCLRPaperConfig, where: _Where, run: Run) -> Checkpointer:
    """One checkpoint folder per run: runs are independent, so they resume independently."""
    return Checkpointer(where.checkpoint_dir / run.name, config_hash(cfg, exclude={"device"}))


def _train_run(
    cfg: EBCLRPaperConfig, where: _Where, run: Run, split: Split, before_unit: Callable[[], object] | None = None
) -> dict[str, list[float]]:
    """Train (or resume) one run to its end, unit by unit; its history (steps, seconds, loss).

    ``before_unit`` is called before each unit is trained (the sequential path's progress bar).
    Called in this process or in a worker process (``train.workers``): it reads and writes only
    files of its own run, seeds every stream from the run alone, and logs nothing to a tracker.
    """
    device = torch.device(where.device)
    set_cpu_threads(cfg, device)  # a worker process starts with torch's default
    n = len(split.train_x)
    total = run_steps(cfg, n, run.batch_size)
    marks = snapshot_steps(total, cfg.train.snapshots)
    ckpt = _checkpointer(cfg, where, run)
    resumed = ckpt.latest()
    first = int(resumed["step"]) if resumed is not None else 0
    saved = resumed["state"] if resumed is not None else None
    hist: dict[str, list[float]] = saved["history"] if saved is not None else {"steps": [0], "seconds": [], "loss": []}
    if first == len(marks) - 1:
        return hist
    torch.manual_seed(_seed(cfg, run))  # initialisation: shared by EBCLR and its ablation
    data_gen = torch.Generator().manual_seed(_seed(cfg, run))
    method_gen = torch.Generator().manual_seed(_seed(cfg, run) * 31 + cfg.train.methods.index(run.method) + 1)
    method = build_method(run.method, cfg, run.batch_size, split.train_x, method_gen, device, where.use_amp)
    perm, pos = torch.zeros(0, dtype=torch.long), 0
    if saved is not None:  # resume inside this run: the saved state replaces what build drew
        method.load_state_dict(saved["method"])
        data_gen.set_state(saved["data_gen"])
        method_gen.set_state(saved["method_gen"])
        perm, pos = saved["perm"], int(saved["pos"])
    else:
        _save_snapshot(snapshot_path(where.model_root, run, 0), method.encoder)
    per_epoch = steps_per_epoch(n, run.batch_size, cfg.train.max_steps_per_epoch)
    for k in range(first, len(marks) - 1):
        if before_unit is not None:
            before_unit()
        method.net.train()
        start, losses = time.perf_counter(), []
        for _ in range(marks[k], marks[k + 1]):
            if pos == 0:
                perm = torch.randperm(n, generator=data_gen)  # a new epoch
            x = split.train_x[perm[pos * run.batch_size : (pos + 1) * run.batch_size]]
            pos = (pos + 1) % per_epoch
            out = method.step(augment(x, cfg.data, data_gen), augment(x, cfg.data, data_gen))
            losses.append(out["loss"])
        hist["steps"].append(marks[k + 1])
        hist["seconds"].append(time.perf_counter() - start)
        hist["loss"].append(sum(losses) / max(len(losses), 1))
        _save_snapshot(snapshot_path(where.model_root, run, marks[k + 1]), method.encoder)
        last = k + 2 == len(marks)
        state = {
            "history": hist,
            "method": {} if last else method.state_dict(),
            "data_gen": data_gen.get_state(),
            "method_gen": method_gen.get_state(),
            "perm": perm,
            "pos": pos,
        }
        ckpt.save(k + 1, state, cfg.model_dump(mode="json"))
    return hist


def train(cfg: EBCLRPaperConfig, ctx: RunContext) -> None:
    """Train (or resume) every run of the plan, then export the served EBCLR model.

    With ``train.workers`` > 1 on a CPU the runs go to that many worker processes (``forkserver``;
    each with ``cpu_threads`` threads): a run's streams depend on nothing outside it, so the weights
    are those of the one-after-another order, bit for bit (test). A killed training resumes every
    run at its own last snapshot either way.
    """
    set_cpu_threads(cfg, ctx.device)
    split = load(ctx.data_dir)
    n = len(split.train_x)
    runs = plan(cfg)
    where = _Where(ctx.model_root, ctx.checkpoint_dir, str(ctx.device), ctx.use_amp)
    units = {run: _units(cfg, n, run) for run in runs}
    done = {}
    for run in runs:
        latest = _checkpointer(cfg, where, run).latest()
        done[run] = int(latest["step"]) if latest is not None else 0
    if any(done.values()):
        ctx.log.info("resuming ebclr training: %d of %d units done", sum(done.values()), sum(units.values()))
    history: dict[str, dict[str, list[float]]] = {}

    def finished(run: Run, hist: dict[str, list[float]]) -> None:
        history[run.name] = hist
        if done[run] < units[run]:  # its curve, once: a run complete before a resume was logged then
            for step, loss in zip(hist["steps"][1:], hist["loss"], strict=True):
                ctx.logger.log_metrics({f"train/{run.name}/loss": loss}, step=int(step))

    workers = min(cfg.train.workers, len(runs)) if not active() else 1  # torchrun: the ranks share each step
    if workers > 1 and ctx.device.type == "cpu":
        pending = [run for run in runs if done[run] < units[run]]
        with process_pool(workers, mp_context=mp.get_context("forkserver")) as pool:
            futures = {pool.submit(_train_run, cfg, where, run, split): run for run in pending}
            for run in runs:
                if run not in pending:
                    finished(run, _train_run(cfg, where, run, split))  # complete: reads its history
            for fut in ctx.progress(
                as_completed(futures), total=len(runs), desc="ebclr train (runs)", initial=len(runs) - len(pending)
            ):
                finished(futures[fut], fut.result())
        history = {run.name: history[run.name] for run in runs}  # plan order, whatever finished first
    else:
        total, first = sum(units.values()), sum(done.values())
        ticks = iter(ctx.progress(range(first, total), total=total, desc="ebclr train", initial=first))
        for run in runs:
            finished(run, _train_run(cfg, where, run, split, lambda: next(ticks)))
        for _ in ticks:  # exhausted: the bar reports its end
            pass

    if is_main():  # torchrun: rank 0 writes (the others hold the same weights)
        (ctx.model_root / "train_history.json").write_text(json.dumps(history, indent=2))
        _export(cfg, ctx, split)


def _export(cfg: EBCLRPaperConfig, ctx: RunContext, split: Split) -> None:
    run = plan(cfg)[0]
    channels = int(split.train_x.shape[1])
    last = run_steps(cfg, len(split.train_x), run.batch_size)
    encoder = load_snapshot(snapshot_path(ctx.model_root, run, last), run.method, channels, cfg.model.width)
    z = embed(encoder, to_input(split.train_x))
    e = cfg.eval
    probe = fit_linear_probe(
        z, split.train_y, split.n_classes, e.probe, e.probe_epochs, e.probe_weight_decay, seed=cfg.seed
    )
    config = {
        "paper": "ebclr",
        "method": run.method,
        "batch_size": run.batch_size,
        "seed": run.seed,
        "steps": last,
        "width": cfg.model.width,
        "in_channels": channels,
        "image_size": cfg.data.image_size,
        "source": cfg.data.source,
        "patch_standardize": cfg.data.source == "patches" and cfg.data.patch_standardize,
        "classes": class_names(ctx.data_dir, split.n_classes),
        "feature_dim": int(z.shape[1]),
        "probe_train_accuracy": probe.accuracy(z, split.train_y),
    }
    export(ctx.model_dir, encoder, probe, config)
