"""The MLflow model registry: register an exported model, move ``champion``, fetch it back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.contract import Gate
from components.tracking.runs import configure

log = logging.getLogger(__name__)

CHAMPION = "champion"
_PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")


def _signature(paper: Any, model_dir: Path) -> Any:
    """Signature from the paper's example input and its real prediction (None if it has none)."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import Schema, TensorSpec

    if paper.example_input is None or paper.load is None or paper.predict is None:
        return None
    example = paper.example_input()
    output = paper.predict(paper.load(model_dir), example)
    if isinstance(output, dict):  # keep the array-valued part: that is what the model returns
        output = next((v for v in output.values() if hasattr(v, "shape")), None)
    signature = infer_signature(example, output)
    if isinstance(example, np.ndarray):  # images of any size: every axis is variable
        outputs = signature.outputs
        if isinstance(output, np.ndarray):
            outputs = Schema([TensorSpec(output.dtype, (-1,) * output.ndim)])
        signature = ModelSignature(Schema([TensorSpec(example.dtype, (-1,) * example.ndim)]), outputs)
    return signature


def register_model(
    root: Path,
    paper: Any,
    model_dir: Path,
    metrics: dict[str, float],
    gate: Gate,
    promote: bool = True,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Log ``model_dir`` as a pyfunc model in the active run and register a new version.

    The version is tagged with the gate's verdict, ``metrics`` (the headline ones) and ``tags``.
    The alias ``champion`` moves to it only when the gate passed and ``promote`` is true (the
    caller says no for a DVC experiment: an experiment does not change what is served); otherwise
    the previous champion keeps it.

    Returns:
        ``{"name", "version", "gate_passed", "champion_moved", "run_id", "reasons"}``.
    """
    client = configure(root)
    example = paper.example_input() if paper.example_input is not None and paper.predict is not None else None
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(_PYFUNC_CODE),
        artifacts={"model_dir": str(model_dir)},
        model_config={"paper": paper.name},
        signature=_signature(paper, model_dir),
        input_example=example,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "safetensors", "paperops"],
        registered_model_name=paper.name,
        await_registration_for=60,
    )
    version = str(info.registered_model_version)
    moved = gate.passed and promote
    for key, value in {
        "gate.passed": str(gate.passed),
        "gate.reasons": "; ".join(gate.reasons) or "all checks passed",
        "champion_moved": str(moved),
        **{f"metric.{k}": f"{v:.4g}" for k, v in sorted(metrics.items())[:50]},
        **(tags or {}),
    }.items():
        client.set_model_version_tag(paper.name, version, key, value)
    client.update_registered_model(paper.name, description=f"{paper.title} (arXiv {paper.arxiv})")
    if moved:
        client.set_registered_model_alias(paper.name, CHAMPION, version)
        log.info("%s version %s is now %s", paper.name, version, CHAMPION)
    elif gate.passed:
        log.warning("%s version %s passed the gate; %s not moved (not promoted)", paper.name, version, CHAMPION)
    else:
        log.warning("%s version %s failed the gate: %s", paper.name, version, "; ".join(gate.reasons))
    return {
        "name": paper.name,
        "version": version,
        "gate_passed": gate.passed,
        "champion_moved": moved,
        "run_id": info.run_id,
        "reasons": list(gate.reasons),
    }


def champion_version(root: Path, paper: str) -> str | None:
    """The registry version that holds the alias ``champion`` (what ``paperops serve`` serves)."""
    client: MlflowClient = configure(root)
    try:
        return str(client.get_model_version_by_alias(paper, CHAMPION).version)
    except MlflowException:  # no registered model of that name, or no alias yet
        return None


@dataclass(frozen=True)
class RegisteredModel:
    """A registry version downloaded: its name, version number, run and exported ``model_dir``."""

    name: str
    version: str
    run_id: str
    path: Path


def fetch_model(root: Path, paper: str, alias: str = CHAMPION, version: str | None = None) -> Path:
    """The ``model_dir`` of a registered model (``fetch_registered(...).path``)."""
    return fetch_registered(root, paper, alias, version).path


def fetch_registered(root: Path, paper: str, alias: str = CHAMPION, version: str | None = None) -> RegisteredModel:
    """Download a registered model: its version number and ``model_dir`` (model.safetensors + config.json).

    Args:
        root: project root (for the default tracking store).
        paper: registered model name.
        alias: registry alias to resolve (ignored when ``version`` is given).
        version: an explicit version number.

    Raises:
        LookupError: when no such version or alias exists, saying how to make one.
    """
    client: MlflowClient = configure(root)
    try:
        mv = client.get_model_version(paper, version) if version else client.get_model_version_by_alias(paper, alias)
    except MlflowException as exc:
        what = f"version {version}" if version else f"the alias {alias!r}"
        raise LookupError(
            f"no registered model {paper!r} with {what} in {mlflow.get_tracking_uri()}: run the pipeline "
            f"(`dvc repro`) until an evaluation passes the gate, or pick a version ({exc.message})"
        ) from None
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{paper}/{mv.version}"))
    flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"].get("python_function", {})
    entry = flavor.get("artifacts", {}).get("model_dir")
    if entry is None or not (local / entry["path"]).is_dir():
        raise LookupError(f"{paper} version {mv.version} is not a paperops model (no model_dir artifact)")
    return RegisteredModel(paper, str(mv.version), str(mv.run_id or ""), local / entry["path"])
