"""One training step of each method: EBCLR, SimCLR and MoCo v2, with their nets, optimiser and state.

Each ``Method`` owns its networks and optimiser and exposes ``step(x1, x2) -> {name: float}`` on two
augmented views in [0, 1], ``encoder`` (what is evaluated) and ``state_dict``/``load_state_dict``
(everything a bit-exact resume needs). Every random draw uses the ``torch.Generator`` passed in.

* EBCLR (libs/ebclr.py ``EBCLR``): z1, z2 = g(f(v1)), g(f(v2)); negatives from the replay buffer
  refined by SGLD on ``log q(x) = logsumexp_j sim(g(f(x)), z2_j)/tau`` with z2 detached; written
  back to the buffer; loss = lambda2 * generative + NT-Xent(-||.||^2); Adam, constant lr.
  (The official loop also clamps Adam gradients to 3 std, but it iterates an ``itertools.chain``
  already consumed by the optimiser, so that code never runs; we leave it out too.)
* EBCLR with lambda2 = 0 (``ebclr_lambda2_0``, the ablation): the same network, optimiser and data,
  loss = NT-Xent(-||.||^2) only. With lambda2 = 0 the generative term (and its lambda1 penalty) has
  no gradient, so the SGLD chains and the buffer are not run at all (they could not change the update).
* SimCLR (libs/simclr.py): NT-Xent with cosine similarity, SGD momentum 0.9, wd 1e-4, lr 0.015 * B/128.
* MoCo v2 (libs/moco.py): query net trained by InfoNCE against the momentum key of the other view
  and a FIFO queue of past keys; the key net is an EMA of the query net (updated before the key
  forward, as there). lr 0.03 * B/256. Shuffle-BN is a no-op on one device and is left out.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from components.distributed import reduce_gradients, shard, sync_rows
from components.papers.ebclr.config import EBCLRPaperConfig
from components.papers.ebclr.data import augment, to_input
from components.papers.ebclr.losses import ebclr_loss, infonce_queue, log_pdf, nt_xent
from components.papers.ebclr.model import EncoderHead
from components.papers.ebclr.sgld import ReplayBuffer, sgld


class Method:
    """Base: nets, optimiser, autocast (bf16 on CUDA, none elsewhere).

    Under torchrun (components/distributed.py) a ``sharded`` method splits its network calls over
    the ranks and sums their gradients; the others (BatchNorm nets: SimCLR, MoCo) run the whole
    step on every rank.
    """

    name = ""
    sharded = False

    def __init__(self, net: EncoderHead, opt: torch.optim.Optimizer, device: torch.device, amp: bool) -> None:
        self.net, self.opt, self.device = net, opt, device
        self.autocast: Callable[[], Any] = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
        )

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])

    def step(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def _update(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.sharded:
            reduce_gradients(self.net.parameters())
        self.opt.step()


class EBCLR(Method):
    """EBCLR, or with ``lambda2 = 0`` its NT-Xent-only ablation (no SGLD, no buffer)."""

    name = "ebclr"
    sharded = True  # no BatchNorm, row-wise SGLD chains: exact under torchrun

    def __init__(
        self,
        cfg: EBCLRPaperConfig,
        net: EncoderHead,
        batch_size: int,
        train_x: torch.Tensor,
        gen: torch.Generator,
        device: torch.device,
        amp: bool,
        lambda2: float | None = None,
    ) -> None:
        e = cfg.ebclr
        lr = e.lr_small_batch if batch_size <= e.small_batch else e.lr  # mnist_b16.yaml: 1e-4
        super().__init__(net, torch.optim.Adam(net.parameters(), lr=lr), device, amp)
        self.cfg, self.gen = cfg, gen
        self.lambda2 = e.lambda2 if lambda2 is None else lambda2
        self.buffer: ReplayBuffer | None = None
        if self.lambda2 == 0:
            self.name = "ebclr_lambda2_0"
            return

        def fresh(n: int) -> torch.Tensor:  # Buffer.__get_rand__ with CD_ratio 1: augmented data views
            idx = torch.randint(len(train_x), (n,), generator=gen)
            return to_input(augment(train_x[idx], cfg.data, gen))

        self.buffer = ReplayBuffer(cfg.sgld.buffer_size, fresh, cfg.sgld.rho, cfg.sgld.init_count)

    def state_dict(self) -> dict[str, Any]:
        extra = {"buffer": self.buffer.state_dict()} if self.buffer is not None else {}
        return {**super().state_dict(), **extra}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.buffer is not None:
            self.buffer.load_state_dict(state["buffer"])

    def step(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, float]:
        e, dev = self.cfg.ebclr, self.device

        def net(x: torch.Tensor) -> torch.Tensor:
            return shard(self.net, x)  # torchrun: this rank's block of the rows (else self.net(x))

        with self.autocast():
            z1, z2 = net(to_input(x1).to(dev)), net(to_input(x2).to(dev))
            if self.buffer is None:  # lambda2 = 0: the loss is exactly the discriminative term
                disc = nt_xent(z1.float(), z2.float(), e.temperature, similarity="neg_sq_dist")
                self._update(disc)
                return {"loss": float(disc.detach()), "discriminative": float(disc.detach())}
            x0, count = self.buffer.sample(len(x1), self.gen)
            ref = z2.detach().float()
            xn = sgld(lambda x: log_pdf(net(x).float(), ref, e.temperature), x0.to(dev), count, self.cfg.sgld, self.gen)
            xn = sync_rows(xn)  # torchrun: each chain from the rank that refined it; the buffer stays identical
            self.buffer.update(xn.cpu())
            zn = net(xn)
            terms = ebclr_loss(z1.float(), z2.float(), zn.float(), e.temperature, e.lambda1, self.lambda2)
        self._update(terms["loss"])
        return {k: float(v.detach()) for k, v in terms.items()}


class SimCLR(Method):
    name = "simclr"

    def __init__(
        self, cfg: EBCLRPaperConfig, net: EncoderHead, batch_size: int, device: torch.device, amp: bool
    ) -> None:
        s = cfg.simclr
        opt = torch.optim.SGD(
            net.parameters(), lr=s.lr * batch_size / 128, momentum=s.momentum, weight_decay=s.weight_decay
        )
        super().__init__(net, opt, device, amp)
        self.temperature = s.temperature

    def step(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, float]:
        with self.autocast():
            z1, z2 = self.net(to_input(x1).to(self.device)), self.net(to_input(x2).to(self.device))
            loss = nt_xent(z1.float(), z2.float(), self.temperature, "cosine")
        self._update(loss)
        return {"loss": float(loss.detach())}


class MoCo(Method):
    name = "moco"

    def __init__(
        self,
        cfg: EBCLRPaperConfig,
        net: EncoderHead,
        batch_size: int,
        gen: torch.Generator,
        device: torch.device,
        amp: bool,
    ) -> None:
        m = cfg.moco
        opt = torch.optim.SGD(
            net.parameters(), lr=m.lr * batch_size / 256, momentum=m.momentum, weight_decay=m.weight_decay
        )
        super().__init__(net, opt, device, amp)
        self.cfg = m
        self.key = copy.deepcopy(net)  # the momentum encoder starts as a copy of the query net
        for p in self.key.parameters():
            p.requires_grad_(False)
        self.queue = torch.randn(m.queue_size, cfg.model.proj_dim, generator=gen).to(device)  # moco.py: randn

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "key": self.key.state_dict(), "queue": self.queue.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.key.load_state_dict(state["key"])
        self.queue = state["queue"].clone().to(self.device)

    def step(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, float]:
        mom = self.cfg.key_momentum
        with self.autocast():
            q = self.net(to_input(x1).to(self.device))
            with torch.no_grad():
                for pq, pk in zip(self.net.parameters(), self.key.parameters(), strict=True):
                    pk.mul_(mom).add_(pq.detach(), alpha=1 - mom)
                k = nn.functional.normalize(self.key(to_input(x2).to(self.device)).float(), dim=1)
            loss = infonce_queue(q.float(), k, self.queue, self.cfg.temperature)
        self._update(loss)
        self.queue = torch.cat([self.queue[len(k) :], k.detach()])  # FIFO: drop the oldest keys
        return {"loss": float(loss.detach())}


def build_method(
    method: str,
    cfg: EBCLRPaperConfig,
    batch_size: int,
    train_x: torch.Tensor,
    gen: torch.Generator,
    device: torch.device,
    amp: bool,
) -> Method:
    """A fresh ``Method`` (networks initialised from the global torch seed, set by the caller).

    ``gen`` drives the method's own draws (SGLD noise, buffer, MoCo queue), not the data order or views.
    """
    net = EncoderHead(method, int(train_x.shape[1]), cfg.model.width, cfg.model.proj_dim).to(device)
    if method == "ebclr":
        return EBCLR(cfg, net, batch_size, train_x, gen, device, amp)
    if method == "ebclr_lambda2_0":
        return EBCLR(cfg, net, batch_size, train_x, gen, device, amp, lambda2=0.0)
    if method == "simclr":
        return SimCLR(cfg, net, batch_size, device, amp)
    if method == "moco":
        return MoCo(cfg, net, batch_size, gen, device, amp)
    raise ValueError(f"unknown method {method!r}")
