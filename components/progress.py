"""``ctx.progress``: a tqdm bar on a terminal, plain percentage lines in logs.

A tqdm bar redraws itself with carriage returns. On a terminal that is one live line; in a log
(DVC runs the stage commands with stderr captured or inherited from a non-terminal, Prefect
workers and CI write to files) every redraw is kept, and one training loop became hundreds of
``\\r``-joined fragments. So the factory looks at the stream when a loop starts:

* a terminal (``isatty()``): the tqdm bar, as before;
* anything else: one line per 10 % of the loop (``<paper> train: 30% (60/200), 12 s elapsed,
  ~28 s left``), and the last line at 100 %; a loop without a known length logs every 1000 items.
  Lines go through the ``paperops.progress`` logger, so they carry the CLI's timestamp format.

``PAPEROPS_PROGRESS=bar|lines|off`` forces a mode (``PAPEROPS_NO_PROGRESS=1``, the tests' switch,
is ``off``); ``PAPEROPS_PROGRESS_STEP`` sets the percentage step of the lines (default 10).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")
MODES = ("bar", "lines", "off")
UNSIZED_EVERY = 1000  # items between lines when the loop's length is unknown
log = logging.getLogger("paperops.progress")


def mode(stream: IO[str] | None = None) -> str:
    """``bar``, ``lines`` or ``off`` for a loop writing to ``stream`` (default: stderr)."""
    if os.environ.get("PAPEROPS_NO_PROGRESS") == "1":
        return "off"
    forced = os.environ.get("PAPEROPS_PROGRESS", "").strip().lower()
    if forced in MODES:
        return forced
    stream = stream if stream is not None else sys.stderr
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # closed or not a real stream
        return "lines"


def _step_percent() -> int:
    try:
        return min(100, max(1, int(os.environ.get("PAPEROPS_PROGRESS_STEP", "10"))))
    except ValueError:
        return 10


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def percent_lines(
    iterable: Iterable[T],
    total: int | None = None,
    desc: str = "",
    initial: int = 0,
    logger: logging.Logger | None = None,
    step: int | None = None,
) -> Iterator[T]:
    """Yield from ``iterable``, logging ``desc: P% (n/total)`` each time ``step`` % more are done.

    ``initial`` items are counted as done before the first (a resumed loop); the rate and the time
    left are estimated from the items of this run only.
    """
    out = logger or log
    step = step or _step_percent()
    if total is None:
        try:
            total = initial + len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    label = desc or "progress"
    start = time.monotonic()
    done = initial
    if total:
        next_mark = (done * 100 // total // step + 1) * step  # the first multiple of step above now
        if initial:
            out.info("%s: resuming at %d%% (%d/%d)", label, done * 100 // total, done, total)
    for item in iterable:
        yield item
        done += 1
        if total:
            if done * 100 >= next_mark * total or done == total:
                elapsed = time.monotonic() - start
                rate = (done - initial) / elapsed if elapsed > 0 else 0.0
                left = f", ~{_duration((total - done) / rate)} left" if rate > 0 and done < total else ""
                out.info(
                    "%s: %d%% (%d/%d), %s elapsed%s",
                    label,
                    min(100, done * 100 // total),
                    done,
                    total,
                    _duration(elapsed),
                    left,
                )
                next_mark = (done * 100 // total // step + 1) * step
        elif done % UNSIZED_EVERY == 0:
            out.info("%s: %d done, %s elapsed", label, done, _duration(time.monotonic() - start))


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", initial: int = 0) -> Iterable[T]:
    """The platform's ``ctx.progress``: a bar on a terminal, percentage lines otherwise (module doc)."""
    chosen = mode(sys.stderr)
    if chosen == "off":
        return iterable
    if chosen == "lines":
        return percent_lines(iterable, total=total, desc=desc, initial=initial)
    from tqdm.auto import tqdm

    bar: Iterable[T] = tqdm(
        iterable, total=total, desc=desc, initial=initial, mininterval=2.0, file=sys.stderr, dynamic_ncols=True
    )
    return bar


__all__ = ["MODES", "mode", "percent_lines", "progress"]
