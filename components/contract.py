"""The one contract every paper implements, and the context a step is given.

A paper package exports ``PAPER = Paper(...)``. The platform (CLI, DVC stages, Prefect flows,
MLflow registration, BentoML services) only ever talks to a paper through this surface, so paper
code never imports MLflow, Prefect, BentoML or DVC.

Step signatures::

    prepare(cfg, ctx) -> None                 writes ctx.data_dir
    train(cfg, ctx) -> None                   writes ctx.model_dir / "model" (export) and checkpoints
    evaluate(cfg, ctx) -> dict[str, float]    writes ctx.report_dir, returns its metrics (all of them)
    gate(metrics) -> Gate                     does this evaluation earn the alias ``champion``?
    load(model_dir) -> model                  rebuilds the exported model for serving (no pickle)

A trained shared block (``components.registry.BLOCKS``) exports ``BLOCK = Block(...)`` with one step,
``build(cfg, ctx) -> dict[str, float]``: it writes ``ctx.model_dir`` (``models/blocks/<block>/model``)
and returns its evaluation metrics. A paper reads a block it declares (``USES_BLOCKS`` in its config
model) from ``ctx.block_dir(<block>)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from pydantic import BaseModel

T = TypeVar("T")


class MetricLogger(Protocol):
    """Where a step sends what a person wants to see later (MLflow in practice)."""

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_figure(self, figure: Any, name: str) -> None: ...
    def log_table(self, table: Any, name: str) -> None: ...
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...
    def flush(self) -> None:
        """Make everything logged so far durable (the platform calls it at every checkpoint)."""
        ...


class NullLogger:
    """A logger that drops everything: for tests and for library use without tracking."""

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_figure(self, figure: Any, name: str) -> None:
        pass

    def log_table(self, table: Any, name: str) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


def _plain_progress(iterable: Iterable[T], total: int | None = None, desc: str = "", **_: Any) -> Iterator[T]:
    yield from iterable


ProgressFactory = Callable[..., Iterable[Any]]


@dataclass
class RunContext:
    """What a step is given: where to read and write, which device, which seed, where to log.

    Attributes:
        paper: registry name of the paper (a key of ``components.registry.PAPERS``).
        root: project root; the three artifact folders below live under it.
        device: the torch device the step runs on (auto-selected: cuda > mps > cpu).
        seed: the global seed of the run.
        logger: metrics, figures and tables go here (``NullLogger`` in unit tests).
        progress: ``progress(iterable, total=, desc=, initial=)`` wraps long loops in a progress bar.
    """

    paper: str
    root: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    logger: MetricLogger = field(default_factory=NullLogger)
    progress: ProgressFactory = _plain_progress
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("paperops"))

    @property
    def data_dir(self) -> Path:
        """``data/<paper>``: what ``prepare`` writes (tracked by DVC)."""
        return self.root / "data" / self.paper

    @property
    def model_root(self) -> Path:
        """``models/<paper>``: everything ``train`` writes (one DVC output, persisted)."""
        return self.root / "models" / self.paper

    @property
    def model_dir(self) -> Path:
        """``models/<paper>/model``: the exported model that is registered and served."""
        return self.model_root / "model"

    @property
    def checkpoint_dir(self) -> Path:
        """``models/<paper>/checkpoints``: resumable training state (kept across reruns)."""
        return self.model_root / "checkpoints"

    @property
    def report_dir(self) -> Path:
        """``reports/<paper>``: metrics.json, result tables, figures."""
        return self.root / "reports" / self.paper

    def block_dir(self, block: str) -> Path:
        """``models/blocks/<block>/model``: a trained shared block the paper declared in ``USES_BLOCKS``.

        The pipeline builds it first, from params.yaml (``build-block@<block>``, or ``paperops run``).
        Where a paper's step runs alone under a root that has none (the contract test, a notebook),
        it is built there now at the block's ``standalone`` configuration (seconds), with a warning.
        """
        path = self.root / "models" / "blocks" / block / "model"
        if not (path / "config.json").is_file():
            from components.registry import get_block

            spec = get_block(block)
            self.log.warning(
                "%s missing: building block %s at its small standalone configuration; the pipeline builds it "
                "from params.yaml (`paperops build-block %s`)",
                path,
                block,
                block,
            )
            cfg = spec.config.model_validate(spec.standalone)
            ctx = RunContext(
                f"blocks/{block}", self.root, self.device, self.seed, NullLogger(), self.progress, self.log
            )
            spec.build(cfg, ctx)
        return path

    @property
    def use_amp(self) -> bool:
        """Mixed precision only on CUDA; CPU and MPS run in float32."""
        return self.device.type == "cuda"


@dataclass(frozen=True)
class Gate:
    """The verdict on an evaluation: ``passed`` earns the alias ``champion``."""

    passed: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Paper:
    """What every paper provides. See the module docstring for the step signatures."""

    name: str
    arxiv: str
    title: str
    config: type[BaseModel]
    prepare: Callable[[Any, RunContext], None]
    train: Callable[[Any, RunContext], None]
    evaluate: Callable[[Any, RunContext], dict[str, float]]
    gate: Callable[[dict[str, float]], Gate]
    load: Callable[[Path], Any] | None = None
    predict: Callable[..., Any] | None = None
    example_input: Callable[[], Any] | None = None
    """Returns a small input for ``predict`` (used for the MLflow signature and smoke checks)."""
    headline: tuple[str, ...] = ()
    """The few metric keys (or ``fnmatch`` patterns) kept in ``reports/<paper>/metrics.json``
    beside the gate's verdict, so that ``dvc metrics show`` and ``dvc exp show`` read in a
    terminal; every metric stays in ``all_metrics.json`` and the MLflow run. Empty: the first keys
    the gate reads (``components.outputs.headline_metrics``)."""


@dataclass(frozen=True)
class Block:
    """A shared block that is trained (or imported) once into ``models/blocks/<name>`` and read by papers.

    ``build(cfg, ctx)`` gets a context whose ``paper`` is ``blocks/<name>``, so ``ctx.model_dir`` is
    ``models/blocks/<name>/model``, ``ctx.checkpoint_dir`` its checkpoints and ``ctx.report_dir``
    ``reports/blocks/<name>``; it returns the block's evaluation metrics.
    """

    name: str
    title: str
    config: type[BaseModel]
    build: Callable[[Any, RunContext], dict[str, float]]
    standalone: dict[str, Any] = field(default_factory=dict)
    """A small config (seconds) for a paper step run where the block was never built (``RunContext.block_dir``)."""
