"""``components.workers.process_pool``: a pool's workers end when the process that owns it is killed.

Before it, a ``kill -9`` of FeSTA's or EBCLR's trainer left its forkserver and pool workers waiting
on their call queue forever (1.8 GB after one test session of tests/papers/festa).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

OWNER = textwrap.dedent(
    """
    import multiprocessing as mp, os, signal, sys
    from components.workers import process_pool

    def pid():
        return os.getpid()

    if __name__ == "__main__":
        pool = process_pool(2, mp_context=mp.get_context(sys.argv[1]), period_s=0.2)
        pids = {pool.submit(pid).result() for _ in range(8)}
        print(" ".join(map(str, sorted(pids))), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no shutdown, no atexit: a crash
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_workers_exit_when_their_owner_is_killed(tmp_path, method: str) -> None:
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    out = tmp_path / "pids.txt"
    with open(out, "w") as stdout:  # a file, not a pipe: the workers would hold a pipe open
        proc = subprocess.Popen([sys.executable, str(script), method], stdout=stdout, env=env)
    assert proc.wait(timeout=120) == -9
    workers = [int(p) for p in out.read_text().split()]
    assert workers and os.getpid() not in workers
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "pool workers outlived their owner"


def test_results_and_initializer_pass_through() -> None:
    from components.workers import process_pool

    with process_pool(1, initializer=os.environ.__setitem__, initargs=("PAPEROPS_POOL_TEST", "set")) as pool:
        assert pool.submit(os.getenv, "PAPEROPS_POOL_TEST").result() == "set"
        assert pool.submit(pow, 3, 4).result() == 81
