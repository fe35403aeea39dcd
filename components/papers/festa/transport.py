"""Tensors between separate processes over torch.distributed: one 2-rank gloo group per client.

The server (rank 0 of every pair) and each client (rank 1 of its pair) meet at one ``TCPStore`` on
127.0.0.1; each pair gets its own ``ProcessGroupGloo`` under a ``PrefixStore``, so a client process
that dies breaks only its own pair: the server's ``recv`` from it raises (connection closed) or
times out, the server drops that client (logged) and the other pairs are untouched. A message is a
fixed 16-int64 header (kind, dtype code, ndim, shape) followed by the payload; structured values
(state dicts) travel as ``torch.save`` bytes and are read back with ``weights_only=True``. Every
byte put on the wire (headers included) is counted per direction.
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

HEADER = 16
DTYPES = [torch.float32, torch.float16, torch.int64, torch.uint8, torch.bfloat16]
KIND_TENSOR, KIND_OBJECT, KIND_STOP = 1, 2, 3


class PeerLost(RuntimeError):
    """The other end of a pair died or stopped answering within the timeout."""


def make_store(port: int, is_server: bool, timeout_s: float) -> dist.TCPStore:
    return dist.TCPStore(
        "127.0.0.1", port, is_master=is_server, timeout=timedelta(seconds=timeout_s), wait_for_workers=False
    )


class Link:
    """One server-client pair: ``send``/``recv`` tensors and objects, counting bytes."""

    def __init__(self, store: dist.Store, client: int, is_server: bool, timeout_s: float) -> None:
        self.client = client
        self.timeout = timedelta(seconds=timeout_s)
        self.rank = 0 if is_server else 1
        self.peer = 1 - self.rank
        prefix = dist.PrefixStore(f"festa-pair-{client}", store)
        self.pg = dist.ProcessGroupGloo(prefix, self.rank, 2, self.timeout)
        self.sent = 0
        self.received = 0

    def _send(self, t: torch.Tensor) -> None:
        t = t.detach().contiguous().cpu()
        try:
            self.pg.send([t], self.peer, 0).wait(self.timeout)  # type: ignore[attr-defined]  # not in the stubs
        except Exception as exc:  # gloo raises RuntimeError/DistBackendError on a closed pair
            raise PeerLost(f"send to pair {self.client} failed: {exc}") from exc
        self.sent += t.numel() * t.element_size()

    def _recv(self, t: torch.Tensor) -> torch.Tensor:
        try:
            self.pg.recv([t], self.peer, 0).wait(self.timeout)  # type: ignore[attr-defined]  # not in the stubs
        except Exception as exc:
            raise PeerLost(f"recv from pair {self.client} failed: {exc}") from exc
        self.received += t.numel() * t.element_size()
        return t

    def send(self, t: torch.Tensor, kind: int = KIND_TENSOR) -> None:
        """Header (kind, dtype, ndim, shape) then the payload."""
        if t.ndim > HEADER - 3:
            raise ValueError(f"at most {HEADER - 3} dims, got {t.ndim}")
        head = torch.zeros(HEADER, dtype=torch.int64)
        head[0], head[1], head[2] = kind, DTYPES.index(t.dtype), t.ndim
        head[3 : 3 + t.ndim] = torch.tensor(t.shape, dtype=torch.int64)
        self._send(head)
        if t.numel():
            self._send(t)

    def recv(self) -> tuple[int, torch.Tensor]:
        """``(kind, tensor)`` of the next message."""
        head = self._recv(torch.zeros(HEADER, dtype=torch.int64))
        kind, code, ndim = (int(v) for v in head[:3])
        shape = [int(v) for v in head[3 : 3 + ndim]]
        out = torch.empty(shape, dtype=DTYPES[code])
        if out.numel():
            self._recv(out)
        return kind, out

    def recv_tensor(self) -> torch.Tensor:
        kind, t = self.recv()
        if kind == KIND_STOP:
            raise StopIteration
        if kind != KIND_TENSOR:
            raise PeerLost(f"pair {self.client}: expected a tensor, got message kind {kind}")
        return t

    def send_object(self, obj: Any) -> None:
        """A state dict (tensors, numbers, containers) as ``torch.save`` bytes."""
        buf = io.BytesIO()
        torch.save(obj, buf)
        self.send(torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8), KIND_OBJECT)

    def recv_object(self) -> Any:
        kind, t = self.recv()
        if kind == KIND_STOP:
            raise StopIteration
        if kind != KIND_OBJECT:
            raise PeerLost(f"pair {self.client}: expected an object, got message kind {kind}")
        return torch.load(io.BytesIO(t.numpy().tobytes()), weights_only=True)

    def send_stop(self) -> None:
        self.send(torch.zeros(0), KIND_STOP)

    def close(self) -> None:
        try:
            self.pg.shutdown()
        except Exception:  # a broken pair may refuse a clean shutdown
            pass
