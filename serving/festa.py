"""FeSTA (arXiv 2111.01338) over HTTP: /classify, /segment and /severity of a chest X-ray image.

Run: ``paperops serve festa`` (= ``bentoml serve serving.festa:Service``), 127.0.0.1:3000. The model
is the registry's ``champion`` (serving/model_source.py): the shared transformer body with each
task's FedAvg-ed head and tail.

* ``POST /classify``: multipart ``image`` (PNG/JPEG, grey or colour); returns the probabilities of
  normal / pneumonia-like / COVID-like and the most likely class.
* ``POST /segment``: multipart ``image``; returns the lesion mask as a PNG of the image's size
  (255 = lesion), header ``X-Lesion-Fraction``.
* ``POST /severity``: multipart ``image``; returns the severity (lesion fraction of the lung area).

Bounds (serving/images.py): PNG or JPEG, 8x8 to 2048x2048 pixels, 8 MiB per upload; the image is
resized to the model's input size. Bad input answers 400 with ``{"error": "<message>"}`` (413 for a
body over the bound).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import bentoml
from bentoml.validators import ContentType
from pydantic import BaseModel, ConfigDict, Field

from serving.common import PaperService, paper_service, read_upload
from serving.images import MAX_UPLOAD_BYTES, decode, encode_png

MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 1024  # one image plus the multipart envelope
Image = Annotated[Path, Field(description="a chest X-ray, PNG or JPEG, 8x8 to 2048x2048 pixels, at most 8 MiB")]


class Classification(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={  # OpenAPI 3.0's `example` (BentoML publishes 3.0)
            "example": {
                "probabilities": {"normal": 0.02, "pneumonia-like": 0.07, "COVID-like": 0.91},
                "label": "COVID-like",
            }
        }
    )
    probabilities: dict[str, float] = Field(description="class -> probability (they sum to 1)")
    label: str = Field(description="the most likely class")


class Severity(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"severity": 0.23}})
    severity: float = Field(ge=0, le=1, description="lesion fraction of the lung area, in [0, 1]")


@paper_service(
    paper="festa",
    title="FeSTA federated split task-agnostic ViT for CXR (arXiv 2111.01338)",
    description=__doc__,
    timeout=60,
    max_concurrency=64,
    max_request_bytes=MAX_REQUEST_BYTES,
)
class FeSTA(PaperService):
    """Classification, lesion segmentation and severity from one shared transformer body."""

    PAPER = "festa"
    TORCH_THREADS = 1  # a 32x32 forward of the small default model: threads only add waiting

    def setup(self) -> None:
        # the module, not the package's `predict` function of the same name
        self.predict = importlib.import_module("components.papers.festa.predict")

    def _pixels(self, image: Path):  # noqa: ANN202 - numpy array
        return decode(read_upload(image, MAX_UPLOAD_BYTES, "image")).pixels

    @bentoml.api(route="/classify")
    def classify(self, image: Image) -> Classification:
        """Class probabilities (normal, pneumonia-like, COVID-like) of one chest X-ray."""
        pixels = self._pixels(image)
        with self.lock:
            return Classification(**self.predict.classify(self.model, pixels))

    @bentoml.api(route="/segment")
    def segment(self, image: Image, ctx: bentoml.Context = None) -> Annotated[Path, ContentType("image/png")]:
        """The lesion mask of one chest X-ray: a PNG of the image's size, 255 = lesion; header
        X-Lesion-Fraction."""
        pixels = self._pixels(image)
        with self.lock:
            out = self.predict.segment(self.model, pixels)
        ctx.response.headers["X-Lesion-Fraction"] = f"{out['lesion_fraction']:.6g}"
        path = Path(ctx.temp_dir) / "mask.png"
        path.write_bytes(encode_png(out["mask"].astype("float32"), "L"))
        return path

    @bentoml.api(route="/severity")
    def severity(self, image: Image) -> Severity:
        """Severity of one chest X-ray: the lesion fraction of the lung area, in [0, 1]."""
        pixels = self._pixels(image)
        with self.lock:
            return Severity(**self.predict.severity(self.model, pixels))


Service = FeSTA
__all__ = ["FeSTA", "Service"]
