"""Algorithm 1 over real processes equals the same algorithm computed in one process; bytes per round
are exactly what the messages hold; a client killed mid-round leaves the others as a departure
between rounds would."""

from __future__ import annotations

import logging
import os
import signal

import numpy as np
import pytest
import torch

from components.papers.festa.client import client_seed
from components.papers.festa.data import as_tensors, sample_batch
from components.papers.festa.fedavg import fedavg, flatten, n_params, unflatten
from components.papers.festa.losses import task_loss
from components.papers.festa.model import FeSTAModel, build_body, build_head, build_tail, model_config
from components.papers.festa.server import FeSTAServer
from components.papers.festa.train import client_files, train_settings

HEAD = 128  # int64 header of every message
CTRL = HEAD + 24  # [command, round, average]


def run_server(cfg, ctx, die_at=None, on_round=None) -> FeSTAServer:
    server = FeSTAServer(client_files(cfg, ctx), model_config(cfg), train_settings(cfg), cfg.seed, die_at=die_at)
    try:
        server.start()
        server.run(save=lambda r, s: None, on_round=on_round)
    finally:
        server.close()
    return server


def reference(cfg, ctx) -> dict[str, torch.Tensor]:
    """Algorithm 1 in one process: the body steps on the mean of the clients' gradients, each client
    steps its head and tail, FedAvg within each task after every round; then tails only."""
    mc, t, seed = model_config(cfg), train_settings(cfg), cfg.seed
    files = client_files(cfg, ctx)
    data = []
    for _, path in files:
        with np.load(path) as f:
            data.append(as_tensors({k: f[k] for k in f.files}))
    sizes = [len(d["label"]) for d in data]
    body = build_body(mc, seed)
    body_opt = torch.optim.Adam(body.parameters(), lr=t["lr"])
    heads = [build_head(mc, task, seed) for task, _ in files]
    tails = [build_tail(task, mc, seed) for task, _ in files]
    opts = [
        torch.optim.Adam([*h.parameters(), *tl.parameters()], lr=t["lr"]) for h, tl in zip(heads, tails, strict=True)
    ]
    ft_opts = [torch.optim.Adam(tl.parameters(), lr=t["finetune_lr"]) for tl in tails]
    gens = [torch.Generator().manual_seed(client_seed(seed, i)) for i in range(len(files))]
    tasks = list(dict.fromkeys(task for task, _ in files))
    for stage, rounds in (("mtl", t["rounds"]), ("ft", t["finetune_rounds"])):
        for _ in range(rounds):
            body_opt.zero_grad()
            for i, (task, _) in enumerate(files):
                batch = sample_batch(data[i], t["batch_size"], gens[i])
                if stage == "mtl":
                    loss = task_loss(task, tails[i](body(heads[i](batch["image"]))), batch, t["dice_weight"])
                    opts[i].zero_grad()
                    loss.backward()
                    opts[i].step()
                else:
                    with torch.no_grad():
                        feats = body(heads[i](batch["image"]))
                    loss = task_loss(task, tails[i](feats), batch, t["dice_weight"])
                    ft_opts[i].zero_grad()
                    loss.backward()
                    ft_opts[i].step()
            if stage == "mtl":
                for p in body.parameters():
                    p.grad /= len(files)
                body_opt.step()
            for task in tasks:
                members = [i for i, (tk, _) in enumerate(files) if tk == task]
                parts = [[heads[i], tails[i]] if stage == "mtl" else [tails[i]] for i in members]
                mean = fedavg([flatten(*p) for p in parts], [sizes[i] for i in members])
                for p in parts:
                    unflatten(mean, *p)
    model = FeSTAModel(mc, tasks, seed=0)
    model.body.load_state_dict(body.state_dict())
    for task in tasks:
        first = next(i for i, (tk, _) in enumerate(files) if tk == task)
        model.heads[task].load_state_dict(heads[first].state_dict())
        model.tails[task].load_state_dict(tails[first].state_dict())
    return model.state_dict()


def test_split_protocol_equals_the_algorithm_in_one_process(smoke_data) -> None:
    cfg, ctx = smoke_data
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"rounds": 2, "finetune_rounds": 1})})
    server = run_server(cfg, ctx)
    got, want = server.export(), reference(cfg, ctx)
    assert got.keys() == want.keys()
    for k in got:
        a, b = got[k], want[k]
        if k.endswith("attn.qkv.bias"):
            # The key bias has an exactly zero gradient (softmax is blind to a shift of every score
            # of a row), so Adam scales float round-off up to ~lr there in any implementation:
            # compare the query and value biases only.
            a, b = a.reshape(3, -1)[[0, 2]], b.reshape(3, -1)[[0, 2]]
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    assert not torch.equal(got["body.norm.weight"], build_body(model_config(cfg), cfg.seed).norm.weight), "trained"

    # bytes: every message of both rounds' protocol, by hand (B, T, D: batch, tokens, width)
    mc, b = model_config(cfg), cfg.train.batch_size
    act = HEAD + 4 * b * (1 + (mc["size"] // mc["patch"]) ** 2) * mc["dim"]
    mtl = ft = 0
    for task, _ in client_files(cfg, ctx):
        head_tail = n_params(build_head(mc, task, 0), build_tail(task, mc, 0))
        tail = n_params(build_tail(task, mc, 0))
        # control, smashed data, body output, dL/db with the loss at its end, dL/ds; FedAvg up, down
        mtl += CTRL + 4 * act + 4 + 2 * (HEAD + 4 * head_tail)
        ft += CTRL + 2 * act + (HEAD + 4) + 2 * (HEAD + 4 * tail)
    assert server.bytes["mtl"] == 2 * mtl and server.bytes["ft"] == ft
    assert server.rounds_bytes()["bytes_per_round"] == (2 * mtl + ft) / 3


def test_a_client_killed_mid_round_is_dropped_and_the_others_are_untouched(smoke_data, caplog) -> None:
    cfg, ctx = smoke_data
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"rounds": 3, "finetune_rounds": 1})})
    victim, at = 3, 2  # the second sev client, in round 2

    def kill_between_rounds(server_ref):
        def on_round(rnd, losses, sent):
            if rnd == at - 1:  # after round 1: SIGKILL from outside, and wait until it is gone
                proc = server_ref[0].procs[victim]
                os.kill(proc.pid, signal.SIGKILL)
                proc.join(timeout=20)

        return on_round

    with caplog.at_level(logging.WARNING, logger="paperops.festa"):
        mid = run_server(cfg, ctx, die_at={victim: (at, "mid")})  # dies after sending round 2's smashed data
    assert [d["client"] for d in mid.dropped] == [victim] and mid.dropped[0]["round"] == at
    # its smashed data arrived; the loss shows when the server sends it the body output or waits
    # for its gradient (which of the two depends on how fast the kernel notices the closed socket)
    assert mid.dropped[0]["during"] in ("body output", "gradient")
    assert any(
        f"client {victim} (sev) lost in round {at}" in r.getMessage() and "dropped" in r.getMessage()
        for r in caplog.records
    )
    assert mid.alive == [0, 1, 2, 4, 5]

    holder: list[FeSTAServer] = []
    before = FeSTAServer(client_files(cfg, ctx), model_config(cfg), train_settings(cfg), cfg.seed)
    holder.append(before)
    try:
        before.start()
        before.run(save=lambda r, s: None, on_round=kill_between_rounds(holder))
    finally:
        before.close()
    assert [d["client"] for d in before.dropped] == [victim]
    assert before.dropped[0]["during"] in ("control", "smashed data") and before.dropped[0]["round"] == at
    a, b = mid.export(), before.export()
    for k in a:  # the survivors ended exactly where they would had the client left between rounds
        assert torch.equal(a[k], b[k]), k


def test_losing_every_client_of_a_task_stops_the_run(smoke_data) -> None:
    cfg, ctx = smoke_data
    # a SIGKILLed peer is noticed when its pair's timeout runs out: 15 s instead of the smoke scale's 60
    train = cfg.train.model_copy(update={"rounds": 2, "finetune_rounds": 0, "timeout_s": 15})
    cfg = cfg.model_copy(update={"train": train})
    with pytest.raises(RuntimeError, match="every client of task 'cls' was lost"):
        run_server(cfg, ctx, die_at={0: (1, "start"), 1: (1, "start")})
