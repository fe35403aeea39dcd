"""The one place that talks to MLflow: runs, figures, tables, the model registry.

Everything else (CLI, flows, services) goes through these functions; paper code only sees the
``MetricLogger`` protocol of ``components.contract``.
"""

from components.tracking.registry import (
    CHAMPION,
    RegisteredModel,
    champion_version,
    fetch_model,
    fetch_registered,
    register_model,
)
from components.tracking.runs import MlflowLogger, configure, stage_run, tracking_uri

__all__ = [
    "CHAMPION",
    "MlflowLogger",
    "RegisteredModel",
    "champion_version",
    "configure",
    "fetch_model",
    "fetch_registered",
    "register_model",
    "stage_run",
    "tracking_uri",
]
