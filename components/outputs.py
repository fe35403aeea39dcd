"""Small files the platform writes beside a paper's outputs, atomically (readers never see half).

* ``reports/<paper>/config.json``: the paper's resolved config at the chosen scale, written by
  ``paperops validate <paper>`` (the DVC stage ``validate@<paper>``) and a dependency of every
  later stage of that paper. It changes only when that paper's resolved config does, or a trained
  block the paper uses is rebuilt (its fingerprint is recorded there).
* ``reports/<paper>/all_metrics.json``: every metric the paper's evaluation returned (what the gate
  reads); ``metrics.json``: the headline (``headline_metrics``), the file DVC shows and compares
  (``dvc metrics show|diff``, ``dvc exp show``). Written by the evaluate stage.
* ``reports/<paper>/registration.json``: the register stage's record (version, gate verdict,
  whether the alias ``champion`` moved).

The lock (``dvc.lock``) and these small files are committed with git, as DVC expects of outputs
with ``cache: false``: a fresh clone can compare experiments against them.
"""

from __future__ import annotations

import fnmatch
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.config import Params

if TYPE_CHECKING:  # contract imports torch; `paperops validate` writes config.json without it
    from components.contract import Gate, Paper

RESOLVED_CONFIG = "config.json"
METRICS = "metrics.json"
ALL_METRICS = "all_metrics.json"
REGISTRATION = "registration.json"
# Keys every metrics.json has, whatever the paper: the gate's verdict (1 passed, 0 not) and the
# number of its failed checks, so that experiments compare on them across papers.
GATE_KEYS = ("gate_passed", "gate_failures")
HEADLINE_FROM_GATE = 4  # a paper without ``headline``: at most this many of the keys its gate reads


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON via a temporary file and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def block_fingerprint(root: Path, block: str) -> str | None:
    """The fingerprint ``models/blocks/<block>/model/config.json`` records of the built block's weights
    (None before it is built)."""
    path = Path(root) / "models" / "blocks" / block / "model" / "config.json"
    try:
        return json.loads(path.read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None


def write_resolved_config(root: Path, params: Params, paper: str) -> Path:
    """Record ``paper``'s validated config at the file's scale in ``reports/<paper>/config.json``.

    The file is rewritten only when its content changes, so its timestamp, like its hash, moves
    only with the paper's own config and, for a paper that uses trained blocks (``USES_BLOCKS``),
    with the fingerprints of those blocks' weights (``"blocks": {"clip": "..."}``): DVC then reruns
    the paper's stages when a block it uses is rebuilt, and no other paper's.
    """
    cfg = params.config(paper)
    record: dict[str, Any] = {"paper": paper, "scale": params.scale, "config": cfg.model_dump(mode="json")}
    if cfg.USES_BLOCKS:
        record["blocks"] = {b: block_fingerprint(root, b) for b in cfg.USES_BLOCKS}
    path = Path(root) / "reports" / paper / RESOLVED_CONFIG
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    if not path.is_file() or path.read_text() != text:
        write_json_atomic(path, record)
    return path


class _Reads(dict[str, float]):
    """A metrics dict that records which keys are read (to find what a gate looks at)."""

    def __init__(self, data: dict[str, float]) -> None:
        super().__init__(data)
        self.read: list[str] = []

    def _note(self, key: str) -> None:
        if key in self.keys() and key not in self.read:
            self.read.append(key)

    def __getitem__(self, key: str) -> float:
        self._note(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._note(key)
        return super().get(key, default)


def headline_keys(paper: Paper, metrics: dict[str, float]) -> list[str]:
    """The paper's headline keys present in ``metrics``, in the order of ``paper.headline``.

    A paper without ``headline`` gets the first ``HEADLINE_FROM_GATE`` keys its gate reads.
    """
    if not paper.headline:
        reads = _Reads(metrics)
        paper.gate(reads)
        return reads.read[:HEADLINE_FROM_GATE]
    keys: list[str] = []
    for pattern in paper.headline:
        keys += [k for k in sorted(metrics) if fnmatch.fnmatchcase(k, pattern) and k not in keys]
    return keys


def headline_metrics(paper: Paper, metrics: dict[str, float], gate: Gate) -> dict[str, float]:
    """``metrics.json``: the gate's verdict, its number of failed checks, the headline keys."""
    return {
        "gate_passed": float(gate.passed),
        "gate_failures": float(len(gate.reasons)),
        **{k: float(metrics[k]) for k in headline_keys(paper, metrics)},
    }
