"""Noise2Score-Tweedie (arXiv 2112.03696) over HTTP: /denoise and /estimate.

Run: ``paperops serve noise2score`` (= ``bentoml serve serving.noise2score:Service``), 127.0.0.1:3000.
The model is the registry's ``champion`` (serving/model_source.py). Bounds and accepted formats:
serving/images.py (PNG/JPEG, 8x8 to 2048x2048, 8 MiB); ``level`` in (0, 1e4]. Bad input answers 400
with ``{"error": "<message>"}`` (413 for a body over the bound, 411 for a chunked upload).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import bentoml
from annotated_types import Gt, Le
from bentoml.validators import ContentType
from pydantic import AllowInfNan

from serving.common import PaperService, paper_service, read_upload
from serving.images import MAX_SIDE, MAX_UPLOAD_BYTES, decode, encode_png

Noise = Literal["auto", "gaussian", "poisson", "gamma"]
# Gaussian sigma on 0..255, Poisson zeta or Gamma k: positive, finite and at most 1e4 (sigma**2 and
# the Tweedie powers of the level stay far from overflow; 1e200 overflowed sigma**2 before).
Level = Annotated[float, Gt(0), Le(1e4), AllowInfNan(False)]
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 1024  # one image plus the multipart envelope and fields


# max_concurrency counts requests in flight, queued ones included: over it BentoML answers 429.
# 8 answered 429 to 101 of 200 requests from 8 concurrent clients (a slot frees only after the
# response is sent); 64 queues about 64 forwards (~0.5 s at 128x128) before shedding load.
@paper_service(
    paper="noise2score",
    title="Noise2Score-Tweedie denoising (arXiv 2112.03696)",
    description=__doc__,
    timeout=120,
    max_concurrency=64,
    max_request_bytes=MAX_REQUEST_BYTES,
)
class Noise2Score(PaperService):
    """Self-supervised denoising with the Tweedie formula; blind noise-model estimation."""

    PAPER = "noise2score"

    def setup(self) -> None:
        from components.papers.noise2score import predict

        self.predict = predict

    @bentoml.api(route="/denoise")
    def denoise(
        self, image: Path, noise: Noise = "auto", level: Level | None = None, ctx: bentoml.Context = None
    ) -> Annotated[Path, ContentType("image/png")]:
        """Denoise a PNG/JPEG (grey or RGB, up to 2048x2048, 8 MiB). ``noise``: auto | gaussian | poisson
        | gamma; ``level``: Gaussian sigma on 0..255, Poisson zeta or Gamma k (estimated when
        omitted). Returns a PNG of the same size and mode; headers X-Noise-Family, X-Noise-Level."""
        decoded = decode(read_upload(image, MAX_UPLOAD_BYTES, "image"))
        with self.lock:
            out = self.predict.denoise(self.model, decoded.pixels, noise=noise, level=level)
        ctx.response.headers["X-Noise-Family"] = out["family"]
        ctx.response.headers["X-Noise-Level"] = f"{out['level']:.6g}"
        path = Path(ctx.temp_dir) / "denoised.png"
        path.write_bytes(encode_png(out["image"], decoded.mode))
        return path

    @bentoml.api(route="/estimate")
    def estimate(self, image: Path) -> dict:
        """Estimate the noise model of a PNG/JPEG: ``{"family", "level", "power"}``."""
        decoded = decode(read_upload(image, MAX_UPLOAD_BYTES, "image"))
        with self.lock:
            return self.predict.estimate(self.model, decoded.pixels)


Service = Noise2Score
__all__ = ["MAX_SIDE", "Noise2Score", "Service"]
