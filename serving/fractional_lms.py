"""Fractional-LMS analysis (arXiv 2110.05201) over HTTP: /identify and /filter.

Run: ``paperops serve fractional_lms`` (= ``bentoml serve serving.fractional_lms:Service``),
127.0.0.1:3000. ``/identify`` runs any of the analysed algorithms on the caller's signals (no model
needed); ``/filter`` applies the registered identified system (``champion``; serving/model_source.py).
JSON in, JSON out. Bounds: signals of 16 to 100 000 finite samples with |value| <= 1e6, at most 64
taps, steps in (0, 2], order in (0, 1]; anything else answers 400 with ``{"error": "<message>"}``
(413 for a body over 8 MiB).
"""

from __future__ import annotations

from typing import Annotated, Literal

import bentoml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import AllowInfNan, Field

from serving.common import PaperService, paper_service

MAX_SAMPLES = 100_000
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # two 100k-sample signals as JSON numbers fit in ~5 MB
Sample = Annotated[float, AllowInfNan(False), Ge(-1e6), Le(1e6)]
Signal = Annotated[list[Sample], Field(min_length=16, max_length=MAX_SAMPLES)]
Algorithm = Literal["lms", "nlms", "flms", "flms_signed", "flms_published", "fnlms", "mflms"]


@paper_service(
    paper="fractional_lms",
    title="Fractional LMS system identification (arXiv 2110.05201)",
    description=__doc__,
    timeout=120,
    max_concurrency=32,
    max_request_bytes=MAX_REQUEST_BYTES,
)
class FractionalLMS(PaperService):
    """System identification with LMS and the fractional LMS family."""

    PAPER = "fractional_lms"

    def setup(self) -> None:
        from components.papers.fractional_lms.predict import identify, predict

        self.identify_fn, self.predict_fn = identify, predict

    @bentoml.api(route="/identify")
    def identify(
        self,
        x: Signal,
        d: Signal,
        taps: Annotated[int, Ge(1), Le(64)] = 8,
        algorithm: Algorithm = "lms",
        step: Annotated[float, Gt(0), Le(2), AllowInfNan(False)] = 0.01,
        fractional_step: Annotated[float, Ge(0), Le(2), AllowInfNan(False)] = 0.01,
        order: Annotated[float, Gt(0), Le(1), AllowInfNan(False)] = 0.5,
        momentum: Annotated[float, Ge(0), Lt(1), AllowInfNan(False)] = 0.5,
    ) -> dict:
        """Identify an FIR system of ``taps`` taps from input ``x`` and desired output ``d`` (same length).
        ``algorithm``: lms | nlms | flms (|w|^(1-f)) | flms_signed | flms_published (w^(1-f), breaks on a
        negative weight) | fnlms | mflms; ``step`` = mu (normalised for nlms/fnlms), ``fractional_step`` =
        mu_f, ``order`` = f. Returns ``{"weights", "mse_db" (learning curve, <= 500 points),
        "final_mse_db", "samples"}``."""
        return self.identify_fn(x, d, taps, algorithm, step, fractional_step, order, momentum)

    @bentoml.api(route="/filter")
    def filter(self, x: Signal) -> dict:
        """Filter ``x`` with the registered identified system: ``{"y", "weights", "algorithm"}``."""
        with self.lock:
            y = self.predict_fn(self.model, x)
        return {"y": y.tolist(), "weights": self.model.weights.tolist(), "algorithm": self.model.config["algorithm"]}


Service = FractionalLMS
__all__ = ["FractionalLMS", "Service"]
