"""Which exported model a service loads (no BentoML import here).

``PAPEROPS_MODEL_DIR``: an exported folder, served directly (benchmarks, a model outside the
registry). Otherwise the MLflow registry of the project at ``PAPEROPS_ROOT`` (default: the current
directory): the version with alias ``champion``, or ``PAPEROPS_MODEL_VERSION`` when set.
"""

from __future__ import annotations

import os
from pathlib import Path


def model_dir(paper: str) -> Path:
    """The folder of the exported model the service of ``paper`` loads (see the module docstring)."""
    if os.environ.get("PAPEROPS_MODEL_DIR"):
        return Path(os.environ["PAPEROPS_MODEL_DIR"])
    from components.tracking import fetch_model

    root = Path(os.environ.get("PAPEROPS_ROOT", Path.cwd()))
    return fetch_model(root, paper, version=os.environ.get("PAPEROPS_MODEL_VERSION"))
