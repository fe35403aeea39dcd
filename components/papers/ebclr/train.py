"""Training: every (method, batch size) run for the same epoch budget, snapshots after every epoch.

The plan is ``[(method, B) for B in batch_sizes for method in methods]``, trained one after another
with one global epoch counter; each run has its own seeded random stream. Per epoch: a fresh permutation of the training images, two augmented
views per image, ``ceil(N / B)`` steps (libs/ebclr.py ``epoch_n_iter``; a last batch of one image
is dropped), and the wall-clock time of the epoch. After each epoch the encoder is written to
``models/ebclr/runs/<method>_b<B>/epoch-XXX.safetensors`` (epoch 0: the random initialisation, the
evaluation's floor) and a checkpoint (current run's nets, optimiser, buffer or queue, the generator
and the history) is saved, so a killed run resumes at its last epoch and ends with exactly the
weights of an uninterrupted run (CPU, same seed).

At the end the served model is exported: the first method's (EBCLR's) encoder at the first batch
size, with a linear probe fitted on its frozen features of the training split.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from components.blocks.metrics.probe import embed, fit_linear_probe
from components.checkpoint import Checkpointer
from components.config import config_hash
from components.contract import RunContext
from components.papers.ebclr.config import EBCLRPaperConfig
from components.papers.ebclr.data import augment, load, to_input
from components.papers.ebclr.methods import build_method
from components.papers.ebclr.model import build_encoder, export


def plan(cfg: EBCLRPaperConfig) -> list[tuple[str, int]]:
    """``[(method, batch_size)]`` in training order."""
    return [(m, b) for b in cfg.train.batch_sizes for m in cfg.train.methods]


def run_name(method: str, batch_size: int) -> str:
    return f"{method}_b{batch_size}"


def snapshot_path(model_root: Path, method: str, batch_size: int, epoch: int) -> Path:
    return Path(model_root) / "runs" / run_name(method, batch_size) / f"epoch-{epoch:03d}.safetensors"


def _save_snapshot(path: Path, encoder: torch.nn.Module) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}, str(tmp))
    tmp.replace(path)


def load_snapshot(path: Path, method: str, in_channels: int, width: int) -> torch.nn.Module:
    """An encoder from a per-epoch snapshot (safetensors), in eval mode."""
    from safetensors.torch import load_file

    enc = build_encoder(method, in_channels, width)
    enc.load_state_dict(load_file(str(path)))
    return enc.eval()


def set_cpu_threads(cfg: EBCLRPaperConfig, ctx: RunContext) -> None:
    """Pin torch's intra-op threads on CPU (``train.cpu_threads``; see its description)."""
    if ctx.device.type == "cpu" and cfg.train.cpu_threads:
        torch.set_num_threads(cfg.train.cpu_threads)


def steps_per_epoch(n: int, batch_size: int, cap: int) -> int:
    steps = math.ceil(n / batch_size)
    if n % batch_size == 1:
        steps -= 1  # a last batch of one image has no negatives
    return min(steps, cap) if cap else steps


def train(cfg: EBCLRPaperConfig, ctx: RunContext) -> None:
    """Train (or resume) every run of the plan, then export the served EBCLR model."""
    set_cpu_threads(cfg, ctx)
    split = load(ctx.data_dir)
    runs = plan(cfg)
    epochs = cfg.train.epochs
    total = len(runs) * epochs
    ckpt = Checkpointer(ctx.checkpoint_dir, config_hash(cfg, exclude={"device"}))
    gen = torch.Generator().manual_seed(cfg.seed)
    history: dict[str, dict[str, list[float]]] = {}
    done, current, current_state = 0, None, None
    resumed = ckpt.latest()
    if resumed is not None:
        done = int(resumed["step"])
        gen.set_state(resumed["state"]["generator"])
        history = resumed["state"]["history"]
        current_state = resumed["state"]["method"]
        ctx.log.info("resuming ebclr training after epoch %d of %d", done, total)

    for g in ctx.progress(range(done, total), total=total, desc="ebclr train", initial=done):
        r, epoch = divmod(g, epochs)
        method, bs = runs[r]
        key = run_name(method, bs)
        if current is None or current.name != method or getattr(current, "batch_size", None) != bs:
            torch.manual_seed(cfg.seed + r)  # initialisation of this run's networks
            if epoch == 0:  # each run draws from its own stream: its curve depends on neither the other
                gen.manual_seed(cfg.seed * 1009 + r)  # runs nor the epoch budget (8 epochs = a prefix of 14)
            gen_state = gen.get_state()
            current = build_method(method, cfg, bs, split.train_x, gen, ctx.device, ctx.use_amp)
            current.batch_size = bs
            if current_state is not None and epoch > 0:  # resume: the saved state replaces what build drew
                current.load_state_dict(current_state)
                gen.set_state(gen_state)
            current_state = None
            if epoch == 0:
                _save_snapshot(snapshot_path(ctx.model_root, method, bs, 0), current.encoder)
        hist = history.setdefault(key, {"epoch_seconds": [], "loss": []})
        n = len(split.train_x)
        steps = steps_per_epoch(n, bs, cfg.train.max_steps_per_epoch)
        perm = torch.randperm(n, generator=gen)
        current.net.train()
        start, losses = time.perf_counter(), []
        for i in range(steps):
            x = split.train_x[perm[i * bs : (i + 1) * bs]]
            out = current.step(augment(x, cfg.data, gen), augment(x, cfg.data, gen))
            losses.append(out["loss"])
        hist["epoch_seconds"].append(time.perf_counter() - start)
        hist["loss"].append(sum(losses) / max(len(losses), 1))
        ctx.logger.log_metrics({f"train/{key}/loss": hist["loss"][-1], f"train/{key}/epoch_seconds": hist["epoch_seconds"][-1]},
                               step=epoch + 1)
        _save_snapshot(snapshot_path(ctx.model_root, method, bs, epoch + 1), current.encoder)
        last = epoch + 1 == epochs
        state = {"generator": gen.get_state(), "history": history, "method": {} if last else current.state_dict()}
        ckpt.save(g + 1, state, cfg.model_dump(mode="json"))

    (ctx.model_root / "train_history.json").write_text(json.dumps(history, indent=2))
    _export(cfg, ctx, split)


def _export(cfg: EBCLRPaperConfig, ctx: RunContext, split: Any) -> None:
    method, bs = plan(cfg)[0]
    channels = int(split.train_x.shape[1])
    encoder = load_snapshot(snapshot_path(ctx.model_root, method, bs, cfg.train.epochs), method, channels, cfg.model.width)
    z = embed(encoder, to_input(split.train_x))
    e = cfg.eval
    probe = fit_linear_probe(z, split.train_y, split.n_classes, e.probe, e.probe_epochs, e.probe_weight_decay, seed=cfg.seed)
    config = {
        "paper": "ebclr", "method": method, "batch_size": bs, "epochs": cfg.train.epochs, "width": cfg.model.width,
        "in_channels": channels, "image_size": cfg.data.image_size, "source": cfg.data.source,
        "classes": [str(c) for c in range(split.n_classes)], "feature_dim": int(z.shape[1]),
        "probe_train_accuracy": probe.accuracy(z, split.train_y),
    }
    export(ctx.model_dir, encoder, probe, config)
