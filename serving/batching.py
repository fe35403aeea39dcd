"""Adaptive batching inside the service process (no BentoML import here).

EBCLR's service used BentoML's batchable API through its own HTTP self-proxy: every request made a
second, internal request that counted against ``max_concurrency`` too, so 32 concurrent clients hit
the limit of 64 and got 429, and the proxy's 429 and 503 came back double-encoded or as
"unexpected error". ``MicroBatcher`` batches in process instead: a request hands its prepared
array to one worker task and awaits its slice of the result. The worker takes the first waiting
array and every other one already queued (up to ``max_batch`` rows), runs one forward in a thread,
and repeats: under load the queue fills while a forward runs, so batches grow with the load; alone,
a request waits for no timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
import numpy as np

Item = tuple[np.ndarray, "asyncio.Future[np.ndarray]"]


class MicroBatcher:
    """Join concurrent calls' ``(n_i, ...)`` arrays into batches of at most ``max_batch`` rows for ``fn``."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], max_batch: int) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self.batch_sizes: list[int] = []  # rows per forward, for tests and benchmarks (last 1000)
        self._queue: asyncio.Queue[Item] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def __call__(self, x: np.ndarray) -> np.ndarray:
        """``fn(x)``, computed in a batch with whatever other calls are waiting. ``x``: (n, ...), n <= max_batch."""
        if not 1 <= len(x) <= self.max_batch:
            raise ValueError(f"between 1 and {self.max_batch} rows per call, got {len(x)}")
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        assert self._queue is not None
        await self._queue.put((x, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        carry: Item | None = None
        while True:
            items = [carry if carry is not None else await self._queue.get()]
            carry = None
            rows = len(items[0][0])
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if rows + len(item[0]) > self.max_batch:
                    carry = item
                    break
                items.append(item)
                rows += len(item[0])
            items = [(x, f) for x, f in items if not f.done()]  # a cancelled request drops out
            if not items:
                continue
            self.batch_sizes = [*self.batch_sizes[-999:], rows]
            try:
                out = await anyio.to_thread.run_sync(self.fn, np.concatenate([x for x, _ in items]))
            except Exception as exc:  # noqa: BLE001 - handed to every caller of this batch
                for _, f in items:
                    if not f.done():
                        f.set_exception(exc)
                continue
            start = 0
            for x, f in items:
                if not f.done():
                    f.set_result(out[start : start + len(x)])
                start += len(x)
