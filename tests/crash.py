"""Helpers for the in-process crash-and-resume tests of the papers' training loops.

``crash_after(n)`` is a ``RunContext.progress`` replacement that raises ``Crash`` at the ``n``-th
item (a crash between two steps, without a process to kill); ``Recorder`` is a logger that keeps
every logged metric point, so a test can compare a resumed run's curve with an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


class Crash(Exception):
    """The simulated crash ``crash_after`` raises."""


def crash_after(n: int) -> Callable[..., Iterator[Any]]:
    def progress(iterable: Iterable[Any], total: int | None = None, desc: str = "", **_: Any) -> Iterator[Any]:
        for i, item in enumerate(iterable):
            if i == n:
                raise Crash
            yield item

    return progress


class Recorder:
    """A logger that keeps each metric's logged values in order (every other logger call is a no-op)."""

    def __init__(self) -> None:
        self.points: dict[str, list[float]] = {}

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for k, v in metrics.items():
            self.points.setdefault(k, []).append(v)

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None
