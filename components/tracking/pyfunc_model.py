"""The MLflow pyfunc flavour of every paperops model, logged as code (no pickle).

MLflow's "models from code": this file is stored with the model and executed on load; the weights
travel as the artifact ``model_dir`` (model.safetensors + config.json) and the paper's name as
``model_config["paper"]``. Loading goes through the paper's own ``load``/``predict``, so
``mlflow.pyfunc.load_model("models:/<paper>@champion")`` works without unpickling anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class PaperModel(PythonModel):
    """Wraps ``PAPER.load`` and ``PAPER.predict`` of the paper named in the model config."""

    def load_context(self, context: Any) -> None:
        from components.registry import get_paper

        self.paper = get_paper(context.model_config["paper"])
        if self.paper.load is None or self.paper.predict is None:
            raise RuntimeError(f"paper {self.paper.name!r} serves no model (PAPER.load/predict is None)")
        self.model = self.paper.load(Path(context.artifacts["model_dir"]))

    # ``np.ndarray``: MLflow 3 reads the hint on ``model_input``; ``Any`` makes it warn twice that
    # it cannot derive a schema, no hint makes it warn that there is none, and ``np.ndarray`` is one
    # of the hints it takes as "no schema from the hint, no conversion" (mlflow/types/type_hints.py,
    # type_hints_no_signature_inference). The input is a paper's ``example_input`` kind (an array,
    # or a dict of arrays for two-image papers), described by the signature and the input example
    # logged with the model (components/tracking/registry.py).
    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> Any:
        predict = self.paper.predict
        assert predict is not None  # load_context refused a paper without one
        return predict(self.model, model_input, **(params or {}))


mlflow.models.set_model(PaperModel())
