"""A FeSTA client: one hospital's process, holding its task's head and tail and its own data only.

Started by the server (server.py) as a separate process; it talks to the server over its own gloo
pair (transport.py) and does what each control message ``[command, round]`` says (Algorithm 1 of
the paper, the client's side):

* ``MTL`` (multi-task learning round): draw a batch, run the head, send the smashed data
  ``s = H(x)`` ``(B, T, D)``; receive the body's output ``b``; run the tail, the task loss, backward
  to ``dL/db`` and send it (the loss value rides at its end); receive ``dL/ds`` from the server,
  backward through the head, one Adam step on head and tail.
* ``FT`` (fine-tuning round, body frozen): the same forward, the head frozen too; the tail alone
  takes the Adam step, and only the loss value goes back.
* a round's control message ``[command, round, average]`` with ``average`` = 1 asks for FedAvg
  after the step: send the head and tail (MTL) or the tail (FT) as one flat vector, receive the
  task's FedAvg and load it.
* ``STATE`` / ``LOAD``: hand the whole client state to the server for its checkpoint, or restore it.
* ``CPU``: report the CPU seconds this process used (the run's CPU account, not the algorithm).
* a stop message ends the process.

``die_at`` is for tests only: ``(round, "start" | "mid")`` makes the client SIGKILL itself when that
round's control message arrives, or after it sent that round's smashed data.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np
import torch

from components.papers.festa.data import as_tensors, sample_batch
from components.papers.festa.fedavg import flatten, unflatten
from components.papers.festa.losses import task_loss
from components.papers.festa.model import build_head, build_tail
from components.papers.festa.transport import KIND_OBJECT, KIND_STOP, Link, PeerLost, make_store

CMD_MTL, CMD_FT, CMD_STATE, CMD_LOAD, CMD_CPU = 1, 2, 3, 4, 5


def client_seed(seed: int, index: int) -> int:
    """The seed of client ``index``'s batch draws (the baselines draw the same batches)."""
    return 1000 * seed + 100 + index


class ClientState:
    """Head, tail, their optimisers and the batch generator of one client."""

    def __init__(self, spec: dict[str, Any]) -> None:
        mc, task, seed = spec["model"], spec["task"], spec["seed"]
        self.task = task
        self.head = build_head(mc, task, seed)  # every client of a task starts from the same weights
        self.tail = build_tail(task, mc, seed)
        self.opt = torch.optim.Adam([*self.head.parameters(), *self.tail.parameters()], lr=spec["lr"])
        self.ft_opt = torch.optim.Adam(self.tail.parameters(), lr=spec["finetune_lr"])
        self.gen = torch.Generator().manual_seed(client_seed(seed, spec["index"]))

    def state(self) -> dict[str, Any]:
        return {
            "head": self.head.state_dict(),
            "tail": self.tail.state_dict(),
            "opt": self.opt.state_dict(),
            "ft_opt": self.ft_opt.state_dict(),
            "gen": self.gen.get_state(),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["head"])
        self.tail.load_state_dict(state["tail"])
        self.opt.load_state_dict(state["opt"])
        self.ft_opt.load_state_dict(state["ft_opt"])
        self.gen.set_state(state["gen"])


def _die(spec: dict[str, Any], rnd: int, point: str) -> None:
    if spec.get("die_at") == (rnd, point):
        os.kill(os.getpid(), signal.SIGKILL)


def mtl_round(link: Link, cs: ClientState, data: dict[str, torch.Tensor], spec: dict[str, Any], rnd: int) -> None:
    """The client's part of one multi-task round (split forward, split backward, local Adam step)."""
    batch = sample_batch(data, spec["batch_size"], cs.gen)
    cs.head.train()
    cs.tail.train()
    s = cs.head(batch["image"])  # smashed data (B, T, D)
    link.send(s.detach())
    _die(spec, rnd, "mid")
    b = link.recv_tensor().requires_grad_(True)  # the body's output (B, T, D)
    loss = task_loss(cs.task, cs.tail(b), batch, spec["dice_weight"])
    cs.opt.zero_grad(set_to_none=True)
    loss.backward()  # tail grads, and dL/db for the server
    assert b.grad is not None
    link.send(torch.cat([b.grad.flatten(), loss.detach().reshape(1)]))  # dL/db, then the loss value
    s.backward(link.recv_tensor())  # dL/ds from the server: head grads
    cs.opt.step()


def ft_round(link: Link, cs: ClientState, data: dict[str, torch.Tensor], spec: dict[str, Any], rnd: int) -> None:
    """One fine-tuning round: head and body frozen, the tail takes the step."""
    batch = sample_batch(data, spec["batch_size"], cs.gen)
    cs.head.eval()
    cs.tail.train()
    with torch.no_grad():
        s = cs.head(batch["image"])
    link.send(s)
    _die(spec, rnd, "mid")
    b = link.recv_tensor()
    loss = task_loss(cs.task, cs.tail(b), batch, spec["dice_weight"])
    cs.ft_opt.zero_grad(set_to_none=True)
    loss.backward()
    cs.ft_opt.step()
    link.send(loss.detach().reshape(1))


def run_client(spec: dict[str, Any]) -> None:
    """Process entry point: connect to the server's store, then serve control messages until stopped."""
    torch.set_num_threads(spec["threads"])
    store = make_store(spec["port"], False, spec["timeout_s"])
    link = Link(store, spec["index"], False, spec["timeout_s"])
    try:
        with np.load(spec["data_file"], allow_pickle=False) as f:
            data = as_tensors({k: f[k] for k in f.files})
        cs = ClientState(spec)
        link.send(torch.tensor([len(data["label"])], dtype=torch.int64))  # n_k, the FedAvg weight
        while True:
            kind, msg = link.recv()
            if kind == KIND_STOP:
                return
            if kind == KIND_OBJECT:  # never expected unprompted
                raise PeerLost(f"client {spec['index']}: unexpected object message")
            cmd, rnd, average = (int(v) for v in msg[:3])
            _die(spec, rnd, "start")
            if cmd in (CMD_MTL, CMD_FT):
                mine = (cs.head, cs.tail) if cmd == CMD_MTL else (cs.tail,)  # what FedAvg averages
                (mtl_round if cmd == CMD_MTL else ft_round)(link, cs, data, spec, rnd)
                if average:
                    link.send(flatten(*mine))
                    unflatten(link.recv_tensor(), *mine)
            elif cmd == CMD_STATE:
                link.send_object(cs.state())
            elif cmd == CMD_LOAD:
                cs.load(link.recv_object())
            elif cmd == CMD_CPU:
                link.send(torch.tensor([time.process_time()], dtype=torch.float32))
            else:
                raise PeerLost(f"client {spec['index']}: unknown command {cmd}")
    except (PeerLost, StopIteration):
        return  # the server is gone or stopped us: nothing of ours to save
    finally:
        link.close()
