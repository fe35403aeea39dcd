"""The three baselines of the paper's comparison, trained in-process (they are not the split protocol).

Every baseline sees exactly what FeSTA sees: the same clients' data, the same batches (each client's
batch generator is seeded as in client.py), the same initial weights (model.seeded), the same
two-stage schedule (``rounds`` steps of everything, then ``finetune_rounds`` steps of the tails with
the body and heads frozen) and the same Adam settings. What differs is who shares what:

* ``local``: every client trains its own one-task model (head, body, tail) on its own data only.
* ``fedavg``: every client trains its own one-task model; every ``k`` steps (and at the end of each
  stage) the whole models of a task's clients are averaged (FedAvg, sample-weighted) and sent back.
  In the fine-tuning stage only the tails change, so only tails are averaged and counted.
* ``central``: the data of all clients in one place, one multi-task model (one body, a head and a
  tail per task) trained on the mean of the clients' losses, the same per-client batches.

Bytes per round of ``fedavg`` are counted as the transport would send them (transport.py): per
synchronisation and client, a control message (24 + 128 bytes), the upload and the download of the
flat float32 vector (4 bytes per parameter + a 128-byte header each).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from components.papers.festa.client import client_seed
from components.papers.festa.data import sample_batch
from components.papers.festa.fedavg import fedavg, flatten, n_params, unflatten
from components.papers.festa.losses import task_loss
from components.papers.festa.model import FeSTAModel
from components.papers.festa.transport import HEADER

HEADER_BYTES = HEADER * 8  # int64 header before every message
CTRL_BYTES = HEADER_BYTES + 3 * 8  # the [command, round, average] control message

ClientData = list[tuple[str, dict[str, torch.Tensor]]]  # [(task, tensors)] in client-index order
Hook = Callable[[int, dict[str, float]], None]


def _autocast(device: torch.device) -> Any:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def _stage(step: int, t: dict[str, Any]) -> tuple[str, int, bool]:
    """``(stage, step within the stage (1-based), last step of the stage)`` of global step ``step`` (0-based)."""
    rounds = int(t["rounds"])
    if step < rounds:
        return "mtl", step + 1, step + 1 == rounds
    return "ft", step + 1 - rounds, step + 1 - rounds == int(t["finetune_rounds"])


class _OneTask:
    """One client's one-task model with its two optimisers (all weights; the tail for fine-tuning)."""

    def __init__(self, mc: dict[str, Any], task: str, seed: int, t: dict[str, Any], device: torch.device) -> None:
        self.task = task
        self.model = FeSTAModel(mc, [task], seed).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=float(t["lr"]))
        self.ft_opt = torch.optim.Adam(self.model.tails[task].parameters(), lr=float(t["finetune_lr"]))

    def step(self, batch: dict[str, torch.Tensor], stage: str, t: dict[str, Any], device: torch.device) -> float:
        m = self.model
        m.train(stage == "mtl")
        m.tails[self.task].train()
        batch = {k: v.to(device) for k, v in batch.items()}
        opt = self.opt if stage == "mtl" else self.ft_opt
        with _autocast(device):
            if stage == "mtl":
                out = m(batch["image"], self.task)
            else:
                with torch.no_grad():
                    feats = m.body(m.heads[self.task](batch["image"]))
                out = m.tails[self.task](feats.float())
            loss = task_loss(self.task, out.float(), batch, float(t["dice_weight"]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())


def _mean_by_task(losses: list[tuple[str, float]], stage: str) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for task, v in losses:
        out.setdefault(f"{stage}_{task}", []).append(v)
    return {k: sum(v) / len(v) for k, v in out.items()}


def train_separate(
    clients: ClientData,
    mc: dict[str, Any],
    t: dict[str, Any],
    seed: int,
    federated: bool,
    device: torch.device,
    on_step: Hook | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """``local`` (``federated=False``) or whole-model ``fedavg``: one one-task model per client.

    Returns:
        ``(state, stats)``: local: ``client<i>.<FeSTAModel key>`` for every client; fedavg: the
        task's averaged model once per task, ``<task>.<key>``. ``stats``: bytes per round (fedavg).
    """
    models = [_OneTask(mc, task, seed, t, device) for task, _ in clients]
    gens = [torch.Generator().manual_seed(client_seed(seed, i)) for i in range(len(clients))]
    sizes = [len(d["label"]) for _, d in clients]
    tasks = list(dict.fromkeys(task for task, _ in clients))
    k = int(t["fedavg_every"])
    wire = {"mtl": 0, "ft": 0}
    total = int(t["rounds"]) + int(t["finetune_rounds"])
    for step in range(total):
        stage, in_stage, last = _stage(step, t)
        losses = []
        for (task, data), m, g in zip(clients, models, gens, strict=True):
            losses.append((task, m.step(sample_batch(data, int(t["batch_size"]), g), stage, t, device)))
        if federated and (in_stage % k == 0 or last):
            for task in tasks:
                members = [i for i, (tk, _) in enumerate(clients) if tk == task]
                parts = [models[i].model if stage == "mtl" else models[i].model.tails[task] for i in members]
                mean = fedavg([flatten(p) for p in parts], [sizes[i] for i in members])
                for p in parts:
                    unflatten(mean, p)
                wire[stage] += len(members) * (CTRL_BYTES + 2 * (HEADER_BYTES + 4 * mean.numel()))
        if on_step is not None:
            on_step(step + 1, _mean_by_task(losses, stage))
    state: dict[str, torch.Tensor] = {}
    if federated:  # after the last averaging every client of a task holds the same model
        for task in tasks:
            first = next(i for i, (tk, _) in enumerate(clients) if tk == task)
            state.update({f"{task}.{k2}": v.detach().cpu() for k2, v in models[first].model.state_dict().items()})
    else:
        for i, m in enumerate(models):
            state.update({f"client{i}.{k2}": v.detach().cpu() for k2, v in m.model.state_dict().items()})
    stats: dict[str, float] = {}
    if federated:
        ft = int(t["finetune_rounds"])
        stats["bytes_per_round"] = (wire["mtl"] + wire["ft"]) / total
        stats["bytes_per_round_mtl"] = wire["mtl"] / int(t["rounds"])
        if ft:
            stats["bytes_per_round_ft"] = wire["ft"] / ft
    return state, stats


def train_central(
    clients: ClientData,
    mc: dict[str, Any],
    t: dict[str, Any],
    seed: int,
    device: torch.device,
    on_step: Hook | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """All data in one place: one multi-task model on the mean of the clients' losses (same batches)."""
    tasks = list(dict.fromkeys(task for task, _ in clients))
    model = FeSTAModel(mc, tasks, seed).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=float(t["lr"]))
    ft_opt = torch.optim.Adam(model.tails.parameters(), lr=float(t["finetune_lr"]))
    gens = [torch.Generator().manual_seed(client_seed(seed, i)) for i in range(len(clients))]
    total = int(t["rounds"]) + int(t["finetune_rounds"])
    for step in range(total):
        stage, _, _ = _stage(step, t)
        model.train(stage == "mtl")
        model.tails.train()
        losses, parts = [], []
        with _autocast(device):
            for (task, data), g in zip(clients, gens, strict=True):
                batch = {k: v.to(device) for k, v in sample_batch(data, int(t["batch_size"]), g).items()}
                if stage == "mtl":
                    out = model(batch["image"], task)
                else:
                    with torch.no_grad():
                        feats = model.body(model.heads[task](batch["image"]))
                    out = model.tails[task](feats.float())
                loss = task_loss(task, out.float(), batch, float(t["dice_weight"]))
                parts.append(loss)
                losses.append((task, float(loss.detach())))
        o = opt if stage == "mtl" else ft_opt
        o.zero_grad(set_to_none=True)
        torch.stack(parts).mean().backward()
        o.step()
        if on_step is not None:
            on_step(step + 1, _mean_by_task(losses, stage))
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, {}


def parameter_counts(mc: dict[str, Any], tasks: list[str]) -> dict[str, float]:
    """Parameters per part: one client's head + tail (what FeSTA averages), the body, a whole model."""
    m = FeSTAModel(mc, tasks, seed=0)
    out = {"params_body": float(n_params(m.body))}
    for task in tasks:
        out[f"params_client_{task}"] = float(n_params(m.heads[task], m.tails[task]))
        out[f"params_whole_{task}"] = float(n_params(m.body, m.heads[task], m.tails[task]))
    return out
