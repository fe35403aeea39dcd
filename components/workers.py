"""Process pools whose workers do not outlive the process that made them.

A ``ProcessPoolExecutor`` worker waits on its call queue for as long as it lives. When the process
that owns the pool dies without shutting it down (``kill -9``, the kernel's OOM killer, a CI
timeout), nothing ever closes that queue: the workers, each holding torch and its data, wait
forever, and so does a ``forkserver`` that forked them. ``process_pool`` gives every worker a
watcher thread that ends it once its owner is gone (checked every ``period_s`` seconds).

The owner is watched by pid (``/proc/<pid>/stat``, where a zombie counts as dead; else
``os.kill(pid, 0)``): a worker forked by a fork server is not the owner's child, so
``os.getppid()`` cannot tell. A pid reused within ``period_s`` of the owner's
death would keep a worker alive until that process ends, which is the old behaviour at worst.
"""

from __future__ import annotations

import multiprocessing.context
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

PERIOD_S = 2.0


def _owner_alive(pid: int) -> bool:
    try:  # Linux: a killed owner nobody reaped yet is a zombie, dead for our purpose
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b") ", 1)[1][:1] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (a reused pid)
        return True
    return True


def _watch_owner(pid: int, period_s: float) -> None:
    while _owner_alive(pid):
        time.sleep(period_s)
    os._exit(70)  # no one will read this worker's results; EX_SOFTWARE, nothing to flush


def _start_worker(
    owner: int, period_s: float, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
) -> None:
    threading.Thread(target=_watch_owner, args=(owner, period_s), name="owner-watch", daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def process_pool(
    max_workers: int,
    mp_context: multiprocessing.context.BaseContext | None = None,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
    period_s: float = PERIOD_S,
) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` whose workers exit when this process is gone."""
    return ProcessPoolExecutor(
        max_workers,
        mp_context=mp_context,
        initializer=_start_worker,
        initargs=(os.getpid(), period_s, initializer, initargs),
    )
