"""Self-describing, atomic, resumable checkpoints and pickle-free model export.

Two kinds of files:

* Training checkpoints (``models/<paper>/checkpoints/step-XXXXXXXX.pt``): the config, its hash,
  the step and every state needed to continue bit-for-bit (model, optimiser, AMP scaler, the
  torch generators). Written to a temporary file and renamed, so a kill -9 leaves either the old
  or the new checkpoint, never half of one. Loaded with ``weights_only=True``: only tensors and
  plain containers, never an unpickled object.
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
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)

_STEP_FILE = re.compile(r"^step-(\d{8})\.pt$")
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


class Checkpointer:
    """Keeps the last ``keep`` training checkpoints of one run configuration.

    Args:
        directory: where checkpoints live.
        config_hash: hash of the config that produced them; checkpoints of another config are
            never resumed (they are left on disk, and a warning says so).
        keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory: Path, config_hash: str, keep: int = 2) -> None:
        self.directory = Path(directory)
        self.config_hash = config_hash
        self.keep = keep

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _STEP_FILE.match(p.name))

    def save(self, step: int, state: dict[str, Any], config: dict[str, Any]) -> Path:
        """Atomically write ``state`` at ``step``; prune older checkpoints."""
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {"step": step, "config_hash": self.config_hash, "config": config, "state": state}
        target = self.directory / f"step-{step:08d}.pt"
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
        """The newest readable checkpoint of this config, or None to start fresh."""
        for path in reversed(self._files()):
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # a truncated file from another writer: skip it
                log.warning("checkpoint %s unreadable (%s); trying an older one", path, exc)
                continue
            if payload.get("config_hash") != self.config_hash:
                log.warning(
                    "checkpoint %s belongs to another config (%s != %s); starting fresh",
                    path.name, payload.get("config_hash"), self.config_hash,
                )
                return None
            return payload
        return None

    def clear(self) -> None:
        """Remove every checkpoint (after a finished run, or to force a fresh start)."""
        for path in self._files():
            path.unlink(missing_ok=True)


def export_model(directory: Path, state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory``, atomically as a whole.

    The files are written into a sibling temporary folder that then replaces ``directory``.
    """
    directory = Path(directory)
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
