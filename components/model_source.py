"""Which exported model a service loads, and the message when there is none (no BentoML here).

``PAPEROPS_MODEL_DIR``: an exported folder, served directly (benchmarks, a model outside the
registry). Otherwise the MLflow registry of the project at ``PAPEROPS_ROOT`` (default: the current
directory): the version with alias ``champion``, or ``PAPEROPS_MODEL_VERSION`` when set. A Bento
built by ``paperops build`` serves the model baked into it (serving/common.py looks there first,
unless ``PAPEROPS_MODEL_DIR`` is set).

Both ``paperops serve`` (before it starts BentoML) and the service process (serving/common.py)
resolve the model here, so a missing store, a missing champion or a bad version is reported the
same way, with what to do, instead of a server that retries its start-up forever.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class ModelUnavailable(RuntimeError):
    """The model to serve cannot be found or loaded; the message says why and what to do."""


def what_to_do(paper: str) -> str:
    """The commands that make a servable model of ``paper`` (appended to every ModelUnavailable)."""
    return (
        f"To fix it: run `make run` (or `paperops run {paper}`) to train, evaluate and register the model; "
        f"`paperops register {paper}` registers an already trained one; "
        f"`paperops serve {paper} --version N` serves a registered version that is not champion "
        f"(reports/{paper}/registration.json names the last one); "
        "PAPEROPS_MODEL_DIR=<exported model folder> serves a folder directly."
    )


@dataclass(frozen=True)
class ServedModel:
    """The model a service serves: its folder, registry version (None for a bare folder) and origin."""

    paper: str
    path: Path
    version: str | None
    source: str  # for people: "registry version 3 (champion)", "folder /x", "Bento model <paper>-model:v3-..."

    def describe(self) -> str:
        """``<paper> v3 (registry version 3 (champion))``: the line services log and document."""
        return f"{self.paper} {'v' + self.version if self.version else '(unversioned)'} from {self.source}"


def model_dir(paper: str) -> Path:
    """The folder of the exported model the service of ``paper`` loads (see the module docstring).

    Raises:
        ModelUnavailable: no such folder, no MLflow store, no champion or no such version.
    """
    return resolve(paper).path


def resolve(paper: str) -> ServedModel:
    """The model the service of ``paper`` loads, with its registry version (see the module docstring).

    Raises:
        ModelUnavailable: no such folder, no MLflow store, no champion or no such version.
    """
    if os.environ.get("PAPEROPS_MODEL_DIR"):
        folder = Path(os.environ["PAPEROPS_MODEL_DIR"])
        if not folder.is_dir():
            raise ModelUnavailable(f"PAPEROPS_MODEL_DIR={folder} is not a folder. {what_to_do(paper)}")
        return ServedModel(paper, folder, None, f"folder {folder}")
    root = Path(os.environ.get("PAPEROPS_ROOT", Path.cwd()))
    store = root / "mlflow.db"
    if not os.environ.get("MLFLOW_TRACKING_URI") and not store.is_file():
        # MLflow would create an empty store here and then find no model: say so instead.
        raise ModelUnavailable(
            f"no MLflow store at {store.resolve()} (nothing was registered in {root.resolve()}). {what_to_do(paper)}"
        )
    try:
        from components.tracking import fetch_registered
    except ImportError as exc:  # a Bento ships without MLflow: it serves the model baked into it
        raise ModelUnavailable(
            f"this installation has no MLflow ({exc}), so it cannot read a registry; serve a Bento's own "
            f"model or set PAPEROPS_MODEL_DIR. {what_to_do(paper)}"
        ) from None

    version = os.environ.get("PAPEROPS_MODEL_VERSION") or None
    try:
        registered = fetch_registered(root, paper, version=version)
    except LookupError as exc:
        raise ModelUnavailable(f"{exc}. {what_to_do(paper)}") from None
    except Exception as exc:  # the store itself is unreadable (a bad URI, a corrupt file, a bad version string)
        raise ModelUnavailable(
            f"cannot read the registry for {paper!r} ({exc.__class__.__name__}: {exc}). {what_to_do(paper)}"
        ) from None
    origin = f"registry version {registered.version}" + ("" if version else " (champion)")
    return ServedModel(paper, registered.path, registered.version, origin)
