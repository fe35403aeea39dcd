"""Self-describing, atomic, resumable checkpoints and pickle-free model export.

Two kinds of files:

* Training checkpoints (``models/<paper>/checkpoints/step-XXXXXXXX-<config hash>.pt``): the
  config, its hash, the step and every state needed to continue bit-for-bit (model, optimiser, AMP
  scaler, the torch generators). Written to a temporary file and renamed, so a kill -9 leaves
  either the old or the new checkpoint, never half of one. Loaded with ``weights_only=True``: only
  tensors and plain containers, never an unpickled object. Pruning and resuming look only at the
  files of their own config hash: leftovers of another config never delete a run's progress.
* Hooks: the platform (``components.stages``) attaches the stage's metric logger to
  ``ctx.checkpoint_dir`` with ``hooked``. Every ``save`` then flushes the buffered metrics first and
  stores where they went; a resume (``latest``) hands that back, so the tracking side continues
  the same loss curve. Paper code only calls ``save`` and ``latest``.
* The exported model (``models/<paper>/model/``): ``model.safetensors`` plus ``config.json``,
  what MLflow logs and BentoML serves.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load_file, save_file

from components import distributed

log = logging.getLogger(__name__)

_STEP_FILE = re.compile(r"^step-(\d{8})(?:-([0-9A-Za-z]+))?\.pt$")  # no hash: written before hashes were in the name
_HASH = re.compile(r"^[0-9A-Za-z]{1,64}$")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointHook(Protocol):
    """What the platform attaches to a checkpoint folder (the stage's MLflow logger in practice)."""

    def before_save(self, step: int) -> dict[str, Any]:
        """Make everything logged so far durable; return plain data to store in the checkpoint."""
        ...

    def after_resume(self, step: int, stored: dict[str, Any]) -> None:
        """Training resumes at ``step`` from a checkpoint whose ``before_save`` returned ``stored``."""
        ...


_HOOKS: dict[Path, CheckpointHook] = {}


@contextmanager
def hooked(directory: Path, hook: CheckpointHook) -> Iterator[None]:
    """Attach ``hook`` to every ``Checkpointer`` on ``directory`` (or below it) for the block."""
    key = Path(directory).resolve()
    previous = _HOOKS.get(key)
    _HOOKS[key] = hook
    try:
        yield
    finally:
        if previous is None:
            _HOOKS.pop(key, None)
        else:
            _HOOKS[key] = previous


class Checkpointer:
    """Keeps the last ``keep`` training checkpoints of one run configuration.

    Args:
        directory: where checkpoints live.
        config_hash: hash of the config that produced them (letters and digits; it is part of the
            file name). Checkpoints of another config are neither resumed nor pruned: they stay
            on disk for a run of that config, and a message says so.
        keep: how many of the newest checkpoints of this config to keep.
    """

    def __init__(self, directory: Path, config_hash: str, keep: int = 2) -> None:
        if not _HASH.match(config_hash):
            raise ValueError(f"config_hash must be 1-64 letters or digits (got {config_hash!r})")
        self.directory = Path(directory)
        self.config_hash = config_hash
        self.keep = keep

    def _all(self) -> list[tuple[Path, str | None]]:
        """Every checkpoint file in the folder, oldest step first, with the hash in its name."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            m = _STEP_FILE.match(path.name)
            if m:
                found.append((int(m.group(1)), path, m.group(2)))
        return [(path, h) for _, path, h in sorted(found)]

    def _files(self) -> list[Path]:
        """This config's checkpoints, oldest step first."""
        return [p for p, h in self._all() if h == self.config_hash]

    def _hook(self) -> CheckpointHook | None:
        """The hook attached to this folder or to a folder above it (a paper's sub-folders)."""
        here = self.directory.resolve()
        return next((_HOOKS[d] for d in (here, *here.parents) if d in _HOOKS), None)

    def save(self, step: int, state: dict[str, Any], config: dict[str, Any]) -> Path:
        """Atomically write ``state`` at ``step``; prune this config's older checkpoints.

        With a hook attached (``hooked``), the metrics logged so far are flushed first, so that a
        kill right after this call loses no logged point up to ``step``. A torchrun rank other than
        0 writes nothing (its state is rank 0's: components/distributed.py).
        """
        target = self.directory / f"step-{step:08d}-{self.config_hash}.pt"
        if not distributed.is_main():
            return target
        self.directory.mkdir(parents=True, exist_ok=True)
        hook = self._hook()
        payload = {
            "step": step,
            "config_hash": self.config_hash,
            "config": config,
            "state": state,
            "tracking": hook.before_save(step) if hook else {},
        }
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".pt")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            _fsync_dir(self.directory)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for old in self._files()[: -self.keep]:
            old.unlink(missing_ok=True)
        return target

    def latest(self) -> dict[str, Any] | None:
        """The newest readable checkpoint of this config, or None to start fresh.

        Files named without a hash (written before hashes were in the name) are read and used
        when their stored hash matches. With a hook attached, it is told where training resumes.
        """
        files = self._all()
        candidates = [p for p, h in files if h == self.config_hash or h is None]
        for path in reversed(candidates):
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # a truncated file from another writer: skip it
                log.warning("checkpoint %s unreadable (%s); trying an older one", path, exc)
                continue
            if payload.get("config_hash") != self.config_hash:
                continue  # an old-style name of another config
            hook = self._hook()
            if hook is not None:
                hook.after_resume(int(payload["step"]), dict(payload.get("tracking") or {}))
            return payload
        others = sorted({h for _, h in files if h not in (None, self.config_hash)})
        if others:
            log.info(
                "checkpoints of other configs (%s) left in %s; starting this config (%s) fresh",
                ", ".join(others),
                self.directory,
                self.config_hash,
            )
        return None

    def clear(self) -> None:
        """Remove this config's checkpoints (after a finished run, or to force a fresh start)."""
        for path in self._files():
            path.unlink(missing_ok=True)


def export_model(directory: Path, state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory``, atomically as a whole.

    The files are written into a sibling temporary folder that then replaces ``directory``. A
    torchrun rank other than 0 writes nothing (rank 0 exports the same weights).
    """
    directory = Path(directory)
    if not distributed.is_main():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}-"))
    try:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_export(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read an exported model: ``(config, state_dict)``. Safetensors only, no pickle.

    Raises:
        FileNotFoundError: when the folder lacks either file.
    """
    directory = Path(directory)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name} missing: not an exported paperops model")
    config = json.loads((directory / CONFIG_FILE).read_text())
    return config, load_file(str(directory / WEIGHTS_FILE))
