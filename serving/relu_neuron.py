"""BentoML service of the single-neuron ReLU study (arXiv 2202.05510): /predict and /analyze.

Run: ``paperops serve relu_neuron`` (= ``bentoml serve serving.relu_neuron:Service``), 127.0.0.1:3000.
``/predict`` evaluates the registered neuron (``champion``, or ``PAPEROPS_MODEL_VERSION``;
serving/model_source.py); ``/analyze`` runs the gradient flow on the caller's small dataset. JSON in,
JSON out. Bounds: /predict up to 10 000 inputs of the neuron's dimension; /analyze up to 200 samples
in up to 200 dimensions, |values| <= 1e6, initialisation norm in [1e-6, 100]. Bad input: 400 with a
message (413 for a body over 4 MiB).
"""

from __future__ import annotations

from typing import Annotated

import bentoml
from annotated_types import Ge, Le
from bentoml.exceptions import BadInput
from pydantic import AllowInfNan, Field

from serving.asgi import DocsAlias, MaxBodySize
from serving.model_source import model_dir

PAPER = "relu_neuron"
MAX_REQUEST_BYTES = 4 * 1024 * 1024
Value = Annotated[float, AllowInfNan(False), Ge(-1e6), Le(1e6)]
Row = Annotated[list[Value], Field(min_length=1, max_length=200)]


@bentoml.service(
    name="relu_neuron",
    http={"host": "127.0.0.1", "port": 3000},
    traffic={"timeout": 60, "max_concurrency": 32},
    workers=1,
)
class ReluNeuron:
    """One ReLU neuron: predictions, and the gradient-flow analysis of a dataset."""

    def __init__(self) -> None:
        from components.papers.relu_neuron.predict import analyze, predict
        from components.registry import get_paper

        self.model = get_paper(PAPER).load(model_dir(PAPER))
        self.analyze_fn, self.predict_fn = analyze, predict

    @bentoml.api(route="/predict")
    def predict(self, x: Annotated[list[Row], Field(min_length=1, max_length=10_000)]) -> dict:
        """relu(w . x) for every input row of ``x`` (n, d); d must be the neuron's dimension."""
        d = len(self.model.w)
        bad = next((i for i, row in enumerate(x) if len(row) != d), None)
        if bad is not None:
            raise BadInput(f"x[{bad}] has {len(x[bad])} values; the registered neuron takes inputs of dimension {d}")
        return {"y": self.predict_fn(self.model, x).tolist(), "w": self.model.w.tolist()}

    @bentoml.api(route="/analyze")
    def analyze(
        self,
        X: Annotated[list[Row], Field(min_length=1, max_length=200)],
        y: Annotated[list[Value], Field(min_length=1, max_length=200)],
        init_scale: Annotated[float, Ge(1e-6), Le(100), AllowInfNan(False)] = 1e-3,
        seed: Annotated[int, Ge(0), Le(2**31 - 1)] = 0,
    ) -> dict:
        """Gradient flow of relu(w . x) on ``(X, y)`` from a random w(0) of norm ``init_scale``: the norm
        trajectory ``{time, norm}``, the ``support_vectors`` (indices active at the limit), ``w``,
        ``final_loss``, ``pattern_changes``, ``converged``, ``norm_monotone``."""
        if len({len(row) for row in X}) != 1:
            raise BadInput("every row of X must have the same length")
        if len(y) != len(X):
            raise BadInput(f"X has {len(X)} rows but y has {len(y)} values")
        try:
            return self.analyze_fn(X, y, init_scale, seed)
        except ValueError as exc:
            raise BadInput(str(exc)) from None


ReluNeuron.add_asgi_middleware(MaxBodySize, max_bytes=MAX_REQUEST_BYTES)
ReluNeuron.add_asgi_middleware(DocsAlias)
Service = ReluNeuron
__all__ = ["ReluNeuron", "Service"]
