"""The FeSTA server: the shared transformer body, Algorithm 1 of the paper, clients as processes.

The server runs in the training process; every client (client.py) is a separate process started
from a fork server and connected by its own gloo pair (transport.py), so a client that dies breaks
only its own pair. Per round of the multi-task learning stage (MTL, Algorithm 1):

1. every client sends its head's smashed data ``s_c = H_c(x_c)`` ``(B, T, D)``;
2. the server runs the body ``b_c = B(s_c)`` and sends ``b_c`` back;
3. each client runs its tail and task loss ``L_c`` and sends ``dL_c/db_c``;
4. the server backpropagates it through the body, sends ``dL_c/ds_c`` back (the client finishes the
   backward through its head and steps head and tail), and accumulates ``dL_c/dtheta_B``;
5. the body takes one Adam step on the mean over clients, ``(1/C) sum_c dL_c/dtheta_B``: the body
   is updated from every task's loss;
6. every ``k`` rounds (and at the last), the heads and tails of each task's clients are averaged
   (FedAvg, fedavg.py) and sent back.

Then the fine-tuning stage (the paper's final step): the body (and the heads) frozen, the clients
send smashed data, receive the body's output and train their tails; tails are FedAvg-ed within the
task every ``k`` rounds and at the last.

**A client that dies** (its pair raises ``PeerLost``: connection closed or ``timeout_s`` of silence)
is dropped at once, with a warning naming the client, the round and what failed; the round goes on
with the others. Its own contribution is kept only if the server had already backpropagated its
gradient, and the body's step averages over the clients that contributed, so a death at any point
of a round leaves the survivors exactly where a departure between rounds would (tested). A task
that loses all its clients stops the run.

**Bytes**: every byte on the wire (headers, control messages, smashed data, gradients, FedAvg
vectors; both directions) is counted per round; the client states the server collects for its
checkpoints and hands back on a resume are counted apart (``checkpoint_bytes``), as they are not
part of the algorithm.

**Checkpoints**: every ``checkpoint_every`` rounds the server collects every client's state (head,
tail, optimisers, batch generator) and saves it with its own (body, optimiser, averages, byte
counters) through the caller's ``save``; a resumed run restarts the clients from those states, so a
run killed with ``kill -9`` ends with the weights of an uninterrupted one (CPU, tested).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
from collections.abc import Callable, Iterable
from functools import partial
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import torch

from components.papers.festa.client import (
    CMD_CPU,
    CMD_FT,
    CMD_LOAD,
    CMD_MTL,
    CMD_STATE,
    run_client,
)
from components.papers.festa.fedavg import fedavg, n_params, unflatten
from components.papers.festa.model import FeSTAModel, build_body, build_head
from components.papers.festa.transport import Link, PeerLost, make_store

log = logging.getLogger("paperops.festa")

_CONTEXT: Any = None


def process_context() -> Any:
    """A fork-server context that has imported the client code (torch, no timm) once.

    Forking from that clean single-threaded server costs a client nothing, where a spawned client
    would pay ~3 CPU-s to import torch and a fork of the training process would copy its threads.
    """
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = mp.get_context("forkserver")
        # torch._dynamo: the first optimiser a process creates imports it (~2 CPU-s); preloaded once.
        _CONTEXT.set_forkserver_preload(["torch._dynamo", "components.papers.festa.client"])
    return _CONTEXT


def _ask(link: Link, msg: torch.Tensor) -> torch.Tensor:
    """Send ``msg``, return the tensor that answers it."""
    link.send(msg)
    return link.recv_tensor()


def _sent(link: Link, msg: torch.Tensor) -> bool:
    link.send(msg)
    return True


def ctrl(cmd: int, rnd: int, average: bool = False) -> torch.Tensor:
    """The control message ``[command, round, average]`` (client.py)."""
    return torch.tensor([cmd, rnd, int(average)], dtype=torch.int64)


class FeSTAServer:
    """One FeSTA training run: the body, the client processes, the rounds of both stages.

    Args:
        clients: ``[(task, data_file)]`` in client-index order.
        model: the model config (model.model_config).
        train: the run's training settings (``rounds``, ``finetune_rounds``, ``batch_size``, ``lr``,
            ``finetune_lr``, ``fedavg_every``, ``checkpoint_every``, ``timeout_s``, ``threads``,
            ``dice_weight``).
        seed: the run's seed (paired initialisation and batch draws, model.seeded).
        device: where the body computes (the clients compute on the CPU); bfloat16 autocast on CUDA.
        die_at: tests only: ``{client: (round, "start" | "mid")}`` kills that client at that point.
    """

    def __init__(
        self,
        clients: list[tuple[str, Path]],
        model: dict[str, Any],
        train: dict[str, Any],
        seed: int,
        device: torch.device | None = None,
        die_at: dict[int, tuple[int, str]] | None = None,
    ) -> None:
        self.clients = clients
        self.tasks = list(dict.fromkeys(t for t, _ in clients))
        self.mc = model
        self.t = train
        self.seed = seed
        self.device = device or torch.device("cpu")
        self.die_at = die_at or {}
        self.body = build_body(model, seed).to(self.device)
        self.opt = torch.optim.Adam(self.body.parameters(), lr=train["lr"])
        self.links: dict[int, Link] = {}
        self.all_links: list[Link] = []
        self.procs: dict[int, BaseProcess] = {}
        self.alive: list[int] = list(range(len(clients)))
        self.sizes: dict[int, int] = {}
        self.avg: dict[str, dict[str, torch.Tensor]] = {"head": {}, "tail": {}}
        self.bytes: dict[str, int] = {"mtl": 0, "ft": 0, "setup": 0, "checkpoint": 0}
        self.history: dict[str, list[float]] = {}
        self.dropped: list[dict[str, Any]] = []
        self.round = 0  # rounds done, MTL then FT

    # ------------------------------------------------------------------ processes and links
    @property
    def total_rounds(self) -> int:
        return int(self.t["rounds"]) + int(self.t["finetune_rounds"])

    def _wire(self) -> int:
        return sum(link.sent + link.received for link in self.all_links)

    def start(self, resumed: dict[str, Any] | None = None) -> None:
        """Start the client processes (the alive ones of ``resumed``) and connect their pairs."""
        if resumed is not None:
            self._restore(resumed)
        store = make_store(0, True, float(self.t["timeout_s"]))
        ctx = process_context()
        for i in self.alive:
            task, data_file = self.clients[i]
            spec = {
                "port": store.port,
                "index": i,
                "task": task,
                "data_file": str(data_file),
                "model": self.mc,
                "seed": self.seed,
                "batch_size": int(self.t["batch_size"]),
                "lr": float(self.t["lr"]),
                "finetune_lr": float(self.t["finetune_lr"]),
                "timeout_s": float(self.t["timeout_s"]),
                "threads": int(self.t["threads"]),
                "dice_weight": float(self.t["dice_weight"]),
                "die_at": self.die_at.get(i),
            }
            proc = ctx.Process(target=run_client, args=(spec,), name=f"festa-client-{i}", daemon=True)
            proc.start()
            self.procs[i] = proc
        self._store = store  # keep the rendezvous store alive as long as the pairs
        before = self._wire()
        for i in list(self.alive):
            try:
                link = Link(store, i, True, float(self.t["timeout_s"]))
            except RuntimeError as exc:  # the client never joined its pair
                self._drop(i, "connect", exc)
                continue
            self.links[i] = link
            self.all_links.append(link)
        for i in list(self.alive):  # every client loads its data meanwhile, then says its n_k
            n = self._guard(i, "hello", lambda link: int(link.recv_tensor()[0]))
            if n is not None and i not in self.sizes:
                self.sizes[i] = n
        if resumed is not None:
            for i in list(self.alive):
                self._guard(i, "restore", partial(self._load_client, state=resumed["clients"][i]))
        self.bytes["setup"] += self._wire() - before

    def _load_client(self, link: Link, state: dict[str, Any]) -> None:
        link.send(ctrl(CMD_LOAD, self.round))
        link.send_object(state)

    def client_cpu(self) -> float:
        """CPU seconds the alive clients' processes used (a dropped client's are not counted)."""
        before, total = self._wire(), 0.0
        for i in list(self.alive):
            got = self._guard(i, "cpu report", lambda link: _ask(link, ctrl(CMD_CPU, self.round)))
            if got is not None:
                total += float(got[0])
        self.bytes["setup"] += self._wire() - before
        return total

    def close(self) -> None:
        """Stop the clients still alive, reap every process, close the pairs."""
        for i in list(self.alive):
            if i in self.links:
                with contextlib.suppress(PeerLost):
                    self.links[i].send_stop()
        for proc in self.procs.values():
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for link in self.all_links:
            link.close()

    def _drop(self, i: int, what: str, exc: BaseException) -> None:
        if i not in self.alive:
            return
        self.alive.remove(i)
        task = self.clients[i][0]
        self.dropped.append({"client": i, "task": task, "round": self.round + 1, "during": what})
        log.warning(
            "festa: client %d (%s) lost in round %d during %s (%s); dropped, continuing with %d clients",
            i,
            task,
            self.round + 1,
            what,
            exc,
            len(self.alive),
        )
        if not any(self.clients[j][0] == task for j in self.alive):
            raise RuntimeError(f"every client of task {task!r} was lost (last: client {i} in round {self.round + 1})")

    def _guard(self, i: int, what: str, fn: Callable[[Link], Any]) -> Any:
        """``fn(link of i)``; a lost client is dropped (and None returned)."""
        if i not in self.alive:
            return None
        try:
            return fn(self.links[i])
        except PeerLost as exc:
            self._drop(i, what, exc)
            return None

    # ------------------------------------------------------------------------------ rounds
    def _autocast(self) -> Any:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def mtl_round(self, average: bool) -> dict[str, float]:
        """Steps 1-5 of Algorithm 1 for every alive client (and 6 when ``average``); returns the
        mean loss per task."""
        rnd = self.round + 1
        self.body.train()
        for i in list(self.alive):
            self._guard(i, "control", lambda link: link.send(ctrl(CMD_MTL, rnd, average)))
        smashed: dict[int, torch.Tensor] = {}
        for i in list(self.alive):  # 1. smashed data from every client
            s = self._guard(i, "smashed data", lambda link: link.recv_tensor())
            if s is not None:
                smashed[i] = s.to(self.device).requires_grad_(True)
        outs: dict[int, torch.Tensor] = {}
        for i, s in smashed.items():  # 2. the body's forward, sent back
            with self._autocast():
                out = self.body(s)
            if self._guard(i, "body output", partial(_sent, msg=out.detach().float().cpu())):
                outs[i] = out
        self.opt.zero_grad(set_to_none=True)
        contributed, losses = 0, dict[str, list[float]]()
        for i, out in outs.items():  # 3-4. the client's gradient through the body, and back
            got = self._guard(i, "gradient", lambda link: link.recv_tensor())
            if got is None:
                continue
            grad, loss = got[:-1].view(out.shape), float(got[-1])  # dL/db, then the loss value
            out.backward(grad.to(self.device, out.dtype))
            contributed += 1
            losses.setdefault(self.clients[i][0], []).append(loss)
            s_grad = smashed[i].grad
            assert s_grad is not None
            self._guard(i, "head gradient", partial(_sent, msg=s_grad.float().cpu()))
        if contributed:  # 5. one step on the mean over the clients that contributed
            for p in self.body.parameters():
                if p.grad is not None:
                    p.grad /= contributed
            self.opt.step()
        if average:
            self.average("mtl")
        return {t: sum(v) / len(v) for t, v in losses.items()}

    def ft_round(self, average: bool) -> dict[str, float]:
        """A fine-tuning round: the frozen body's forward for every client; tails train client-side
        (FedAvg of the tails when ``average``)."""
        rnd = self.round + 1
        self.body.eval()
        for i in list(self.alive):
            self._guard(i, "control", lambda link: link.send(ctrl(CMD_FT, rnd, average)))
        smashed: dict[int, torch.Tensor] = {}
        for i in list(self.alive):
            s = self._guard(i, "smashed data", lambda link: link.recv_tensor())
            if s is not None:
                smashed[i] = s
        losses: dict[str, list[float]] = {}
        for i, s in smashed.items():
            with torch.no_grad(), self._autocast():
                out = self.body(s.to(self.device)).float().cpu()
            loss = self._guard(i, "body output", partial(_ask, msg=out))
            if loss is not None:
                losses.setdefault(self.clients[i][0], []).append(float(loss[0]))
        if average:
            self.average("ft")
        return {t: sum(v) / len(v) for t, v in losses.items()}

    def average(self, stage: str) -> None:
        """FedAvg within each task: heads and tails (MTL) or tails (FT), weighted by n_k. The clients
        upload after their step when the round's control message asked for it."""
        for task in self.tasks:
            members = [i for i in self.alive if self.clients[i][0] == task]
            got: dict[int, torch.Tensor] = {}
            for i in members:
                v = self._guard(i, "fedavg upload", lambda link: link.recv_tensor())
                if v is not None:
                    got[i] = v
            if not got:
                continue
            mean = fedavg(list(got.values()), [self.sizes[i] for i in got])
            for i in got:
                self._guard(i, "fedavg download", partial(_sent, msg=mean))
            if stage == "mtl":  # the client vector is flatten(head, tail): split it for the export
                n_head = _n_head(self.mc)
                self.avg["head"][task], self.avg["tail"][task] = mean[:n_head].clone(), mean[n_head:].clone()
            else:
                self.avg["tail"][task] = mean.clone()

    # ------------------------------------------------------------------------ the whole run
    def run(
        self,
        save: Callable[[int, dict[str, Any]], object],
        progress: Callable[[Iterable[int]], Iterable[int]] = lambda it: it,
        on_round: Callable[[int, dict[str, float], int], None] | None = None,
    ) -> None:
        """Rounds ``self.round + 1 ..`` to the end of both stages; ``save(round, state)`` every
        ``checkpoint_every`` rounds; ``on_round(round, losses, bytes)`` after each."""
        rounds, k = int(self.t["rounds"]), int(self.t["fedavg_every"])
        for r in progress(range(self.round, self.total_rounds)):
            before = self._wire()
            stage = "mtl" if r < rounds else "ft"
            in_stage = r + 1 if stage == "mtl" else r + 1 - rounds
            last = in_stage == (rounds if stage == "mtl" else int(self.t["finetune_rounds"]))
            average = in_stage % k == 0 or last  # 6. FedAvg every k rounds and at the stage's end
            losses = self.mtl_round(average) if stage == "mtl" else self.ft_round(average)
            self.round = r + 1
            sent = self._wire() - before
            self.bytes[stage] += sent
            for task, v in losses.items():
                self.history.setdefault(f"loss/{stage}_{task}", []).extend([float(self.round), v])
            if on_round is not None:
                on_round(self.round, {f"{stage}_{t}": v for t, v in losses.items()}, sent)
            if self.round % int(self.t["checkpoint_every"]) == 0 and self.round < self.total_rounds:
                save(self.round, self.state())

    # ---------------------------------------------------------------------- state and export
    def state(self) -> dict[str, Any]:
        """Everything a resume needs: the server's own state and every alive client's."""
        before = self._wire()
        clients: dict[int, Any] = {}
        for i in list(self.alive):
            st = self._guard(i, "checkpoint", self._collect_state)
            if st is not None:
                clients[i] = st
        self.bytes["checkpoint"] += self._wire() - before
        return {
            "round": self.round,
            "body": self.body.state_dict(),
            "opt": self.opt.state_dict(),
            "clients": {i: clients[i] for i in self.alive},
            "alive": list(self.alive),
            "sizes": dict(self.sizes),
            "avg": self.avg,
            "bytes": dict(self.bytes),
            "history": self.history,
            "dropped": self.dropped,
        }

    def _collect_state(self, link: Link) -> Any:
        link.send(ctrl(CMD_STATE, self.round))
        return link.recv_object()

    def _restore(self, st: dict[str, Any]) -> None:
        self.round = int(st["round"])
        self.body.load_state_dict(st["body"])
        self.opt.load_state_dict(st["opt"])
        self.alive = [int(i) for i in st["alive"]]
        self.sizes = {int(i): int(n) for i, n in st["sizes"].items()}
        self.avg = {k: dict(v) for k, v in st["avg"].items()}
        self.bytes = {k: int(v) for k, v in st["bytes"].items()}
        self.history = {k: list(v) for k, v in st["history"].items()}
        self.dropped = list(st["dropped"])

    def export(self) -> dict[str, torch.Tensor]:
        """The FeSTAModel state dict: the body and, per task, the last FedAvg-ed head and tail."""
        model = FeSTAModel(self.mc, self.tasks, seed=0)  # every weight is overwritten below
        model.body.load_state_dict(self.body.state_dict())
        for task in self.tasks:
            unflatten(self.avg["head"][task], model.heads[task])
            unflatten(self.avg["tail"][task], model.tails[task])
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def rounds_bytes(self) -> dict[str, float]:
        """Protocol bytes per round: both stages together and each apart."""
        rounds, ft = int(self.t["rounds"]), int(self.t["finetune_rounds"])
        out = {"bytes_per_round": (self.bytes["mtl"] + self.bytes["ft"]) / max(rounds + ft, 1)}
        out["bytes_per_round_mtl"] = self.bytes["mtl"] / max(rounds, 1)
        if ft:
            out["bytes_per_round_ft"] = self.bytes["ft"] / ft
        return out


def _n_head(mc: dict[str, Any]) -> int:
    """Parameters of one head: the head's share of a client's flat head-and-tail vector."""
    return n_params(build_head(mc, "cls", 0))
