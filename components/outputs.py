"""Small files the platform writes beside a paper's outputs, atomically (readers never see half).

* ``reports/<paper>/config.json``: the paper's resolved config at the chosen scale, written by
  ``paperops validate <paper>`` (the DVC stage ``validate@<paper>``) and a dependency of every
  later stage of that paper. It changes only when that paper's resolved config does, or a trained
  block the paper uses is rebuilt (its fingerprint is recorded there).
* ``reports/<paper>/metrics.json`` and ``registration.json``: written by ``components.stages``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from components.config import Params

RESOLVED_CONFIG = "config.json"


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
