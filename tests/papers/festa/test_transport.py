"""The transport between processes: bytes counted exactly; a dead peer raises PeerLost on its pair only."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from components.papers.festa.server import process_context
from components.papers.festa.transport import HEADER, Link, PeerLost, make_store

HEAD = HEADER * 8  # bytes of the int64 header before every message


def echo_client(port: int, index: int, die: bool) -> None:
    """Receive a tensor and send it back doubled; then an object; ``die``: SIGKILL itself instead."""
    torch.set_num_threads(1)
    link = Link(make_store(port, False, 30.0), index, False, 30.0)
    try:
        x = link.recv_tensor()
        if die:
            os.kill(os.getpid(), signal.SIGKILL)
        link.send(2 * x)
        link.send_object({"w": x.clone(), "n": 3})
        link.recv()  # the stop
    finally:
        link.close()


def test_bytes_counted_and_a_killed_pair_is_the_only_one_lost() -> None:
    store = make_store(0, True, 30.0)
    ctx = process_context()
    procs = [ctx.Process(target=echo_client, args=(store.port, i, i == 1), daemon=True) for i in range(3)]
    for p in procs:
        p.start()
    links = [Link(store, i, True, 30.0) for i in range(3)]
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    for link in links:
        link.send(x)
        assert link.sent == HEAD + 48  # header + 12 float32
    t0 = time.monotonic()
    with pytest.raises(PeerLost):
        links[1].recv_tensor()  # client 1 died after receiving: its pair says so, at once
    assert time.monotonic() - t0 < 10
    for i in (0, 2):  # the other pairs are untouched
        y = links[i].recv_tensor()
        assert torch.equal(y, 2 * x)
        obj = links[i].recv_object()
        assert torch.equal(obj["w"], x) and obj["n"] == 3
        before = links[i].received
        assert before > 2 * HEAD + 48  # the echo, the object's header and its torch.save bytes
        links[i].send_stop()
        assert links[i].sent == HEAD + 48 + HEAD  # the stop is a header alone
    for p in procs:
        p.join(timeout=20)
    assert procs[1].exitcode == -signal.SIGKILL and procs[0].exitcode == 0 and procs[2].exitcode == 0
    for link in links:
        link.close()
