"""Switchable CycleGAN for tunable 3-D ultrasound quality (arXiv 2112.02896) over HTTP.

Run: ``paperops serve switchable_cyclegan`` (= ``bentoml serve serving.switchable_cyclegan:Service``),
127.0.0.1:3000. The model is the registry's ``champion`` (serving/model_source.py): one AdaIN-
switchable generator whose ``alpha`` tunes the enhancement continuously at inference.

* ``POST /enhance``: ``image`` (PNG/JPEG, one 2-D slice whose *rows* run along the elevational, i.e.
  worst-resolved, axis; grey, or colour converted to grey by the channel mean; sides 8..1024) and
  ``alpha`` (in [0, 1], default 1) -> the enhanced slice as an 8-bit grey PNG of the same size.
* ``POST /enhance_volume``: ``volume`` (.npy, a 3-D array ``(E, A, L)`` with the elevational axis
  first, ``uint8`` or floats in [0, 1], sides 4..256, at most 128^3 voxels, 16 MiB) and ``alpha``
  -> the enhanced volume as .npy float32 of the same shape (every plane that contains the
  elevational axis is enhanced, the two estimates of a voxel averaged). Its own route rather than an
  optional file field of /enhance: BentoML 1.4 cannot build an input spec for an optional file.

``alpha`` = 1 is full enhancement (low -> high quality), 0 the generator's other direction,
values in between the paper's continuous control (one network, no retraining). Header ``X-Alpha``
echoes it. A request stops after its time budget (504). Bad input answers 400 with
``{"error": "<message>"}`` (413 for a body over the bound, 411 for a chunked upload).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
from bentoml.validators import ContentType
from pydantic import Field

from serving.common import PaperService, paper_service, read_npy, read_upload
from serving.images import MAX_UPLOAD_BYTES, decode, encode_png

MAX_VOLUME_ELEMENTS = 128**3  # 2,097,152 voxels: 256 planes of 128x128 per family of planes
MAX_NPY_BYTES = 8 * MAX_VOLUME_ELEMENTS + 4096  # a float64 volume of that size and its header
MAX_REQUEST_BYTES = MAX_NPY_BYTES + 64 * 1024  # the larger upload plus the multipart envelope
Alpha = Annotated[
    float,
    Field(
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="enhancement level: 1 full enhancement, 0 the other direction, in between tuned continuously",
        examples=[1.0, 0.5],
    ),
]
PNG = Annotated[Path, ContentType("image/png")]
NPY = Annotated[Path, ContentType("application/octet-stream")]


@paper_service(
    paper="switchable_cyclegan",
    title="Switchable CycleGAN: tunable 3-D ultrasound quality (arXiv 2112.02896)",
    description=__doc__,
    timeout=60,
    max_concurrency=16,
    max_request_bytes=MAX_REQUEST_BYTES,
)
class SwitchableCycleGAN(PaperService):
    """Enhance the elevationally blurred planes of 3-D ultrasound, tunably, with one generator."""

    PAPER = "switchable_cyclegan"

    def setup(self) -> None:
        # the module, not the package's `predict` function of the same name
        self.predict = importlib.import_module("components.papers.switchable_cyclegan.predict")

    @bentoml.api(route="/enhance")
    def enhance(self, image: Path, alpha: Alpha = 1.0, ctx: bentoml.Context = None) -> PNG:
        """Enhance one slice (PNG/JPEG, rows along the elevational axis) at ``alpha`` -> grey PNG."""
        budget = self.budget()
        pixels = decode(read_upload(image, MAX_UPLOAD_BYTES, "image")).pixels
        if pixels.ndim == 3:
            pixels = pixels.mean(axis=2)
        with self.lock:
            out = self.predict.predict(self.model, pixels, alpha=alpha, should_stop=budget)
        ctx.response.headers["X-Alpha"] = f"{alpha:g}"
        path = Path(ctx.temp_dir) / "enhanced.png"
        path.write_bytes(encode_png(out, "L"))
        return path

    @bentoml.api(route="/enhance_volume")
    def enhance_volume(self, volume: Path, alpha: Alpha = 1.0, ctx: bentoml.Context = None) -> NPY:
        """Enhance a 3-D volume (.npy ``(E, A, L)``, elevational axis first) at ``alpha`` -> .npy float32."""
        budget = self.budget()
        arr = read_npy(volume, MAX_NPY_BYTES, MAX_VOLUME_ELEMENTS, "volume")
        if arr.ndim != 3:
            raise ValueError(f"volume must be a 3-D array (E, A, L), got shape {arr.shape}")
        with self.lock:
            out = self.predict.predict(self.model, arr, alpha=alpha, should_stop=budget)
        ctx.response.headers["X-Alpha"] = f"{alpha:g}"
        path = Path(ctx.temp_dir) / "enhanced.npy"
        np.save(path, out, allow_pickle=False)
        return path


Service = SwitchableCycleGAN
__all__ = ["Service", "SwitchableCycleGAN"]
