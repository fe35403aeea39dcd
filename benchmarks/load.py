"""The load generator the serving benchmarks share: a server, fixed requests, N at a time.

``serve(target, env)`` starts ``bentoml serve`` on 127.0.0.1 (tests/http_server.py) and yields its
URL; ``run_load(url, requests, n, concurrency)`` sends ``n`` requests with ``concurrency`` in flight
from one asyncio loop and returns a ``LoadResult`` (requests/s of the 200s, p50/p99 latency, every
non-200 status counted). Each request is prepared once (``Request``: route, body bytes, headers,
multipart encoded ahead), so the client spends its time on the wire, not on building bodies: on a
2-core machine the load generator competes with the server for the CPU, and 32 client threads
encoding multipart bodies cost the server a large share of it.

On a shared machine requests/s move with the neighbours' load, so ``measured`` also takes the
server's own CPU seconds per answer (its process tree, psutil): ``bare CPU per call / server CPU
per request`` is the share of the server's work that is the model, whatever else the machine runs.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.http_server import bentoml_server  # noqa: E402


@dataclass(frozen=True)
class Request:
    """One prepared POST: route, body bytes and headers (content type included)."""

    route: str
    body: bytes
    headers: dict[str, str]

    @classmethod
    def json(cls, route: str, payload: object) -> Request:
        import json

        return cls(route, json.dumps(payload).encode(), {"content-type": "application/json"})

    @classmethod
    def multipart(cls, route: str, files: dict, data: dict | None = None) -> Request:
        """Encode the form once with httpx, as a client would send it."""
        built = httpx.Request("POST", "http://x" + route, files=files, data=data or {})
        return cls(route, built.read(), {"content-type": built.headers["content-type"]})


@dataclass
class LoadResult:
    """What ``run_load`` measured at one concurrency."""

    concurrency: int
    wall_s: float
    latencies: list[float] = field(default_factory=list)  # of the 200 answers
    statuses: Counter = field(default_factory=Counter)
    cpu_per_ok: float | None = None  # server CPU seconds per 200 answer, when measured

    @property
    def ok_per_s(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    @property
    def errors(self) -> str:
        bad = {code: n for code, n in self.statuses.items() if code != 200}
        return ",".join(f"{n}x{code}" for code, n in sorted(bad.items())) or "0"


async def _load(url: str, requests: list[Request], n: int, concurrency: int, timeout: float) -> LoadResult:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    result = LoadResult(concurrency, 0.0)
    counter = iter(range(n))
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            for i in counter:
                req = requests[i % len(requests)]
                start = time.perf_counter()
                try:
                    r = await client.post(req.route, content=req.body, headers=req.headers)
                    status = r.status_code
                except httpx.HTTPError as exc:
                    status = f"{exc.__class__.__name__}"  # type: ignore[assignment]
                if status == 200:
                    result.latencies.append(time.perf_counter() - start)
                result.statuses[status] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.wall_s = time.perf_counter() - start
    return result


def run_load(url: str, requests: list[Request], n: int, concurrency: int, timeout: float = 120) -> LoadResult:
    """Send ``n`` requests (cycling through ``requests``) with ``concurrency`` in flight."""
    return asyncio.run(_load(url, requests, n, concurrency, timeout))


@dataclass
class BareResult:
    """``fn`` called in a loop in this process: calls/s, median latency, CPU seconds per call."""

    per_s: float
    p50_s: float
    cpu_s: float


def bare_rate(fn: Callable[[], object], seconds: float = 3.0, at_least: int = 10) -> BareResult:
    """``fn`` called in a loop for about ``seconds`` after one warm-up call."""
    fn()
    times: list[float] = []
    cpu0 = time.process_time()
    start = time.perf_counter()
    while len(times) < at_least or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu0) / len(times)
    return BareResult(len(times) / sum(times), statistics.median(times), cpu)


@contextmanager
def serve(target: str, env: dict[str, str], name: str) -> Iterator[str]:
    """``bentoml serve <target>`` on 127.0.0.1 from the project's root; yields its URL."""
    full = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "DO_NOT_TRACK": "1", **env}
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"paperops-bench-{name}.log"
    print(f"  starting {target} (log: {log})", flush=True)
    with bentoml_server(target, ROOT, full, log) as url:
        yield url


def server_cpu_s(url: object) -> float:
    """User + system CPU seconds used so far by the server's process tree (``bentoml serve`` and workers)."""
    import psutil

    root = psutil.Process(url.pid)  # type: ignore[attr-defined]
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def measured(url: object, requests: list[Request], n: int, concurrency: int) -> LoadResult:
    """``run_load`` that also records the server's CPU seconds per 200 answer (``cpu_per_ok``)."""
    before = server_cpu_s(url)
    res = run_load(str(url), requests, n, concurrency)
    res.cpu_per_ok = (server_cpu_s(url) - before) / max(1, len(res.latencies))
    return res


def row(label: str, res: LoadResult, bare_per_s: float | None = None, bare_cpu: float | None = None) -> str:
    """One printed line of a load result (and its share of the bare rate)."""
    share = f"  {res.ok_per_s / bare_per_s:5.2f}x of bare" if bare_per_s else ""
    cpu = ""
    if res.cpu_per_ok is not None:
        cpu = f"  server CPU {res.cpu_per_ok * 1000:6.1f} ms/req"
        if bare_cpu:
            cpu += f" ({bare_cpu / res.cpu_per_ok:4.2f}x efficient)"
    return (
        f"{label:>8s} c={res.concurrency:<3d} {res.ok_per_s:7.1f} req/s  p50 {res.percentile(0.5) * 1000:7.1f} ms  "
        f"p99 {res.percentile(0.99) * 1000:7.1f} ms  non-200 {res.errors:>6s}{share}{cpu}"
    )
