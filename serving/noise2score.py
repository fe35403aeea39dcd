"""BentoML service of Noise2Score-Tweedie (arXiv 2112.03696): /denoise and /estimate.

Run: ``paperops serve noise2score`` (= ``bentoml serve serving.noise2score:Service``), 127.0.0.1:3000.

The model is the MLflow registry version with alias ``champion`` (``PAPEROPS_MODEL_VERSION`` picks
another version; ``PAPEROPS_MODEL_DIR`` serves an exported folder directly, for benchmarks).
Bounds and accepted formats: serving/images.py. Bad input answers 400 with a message
(413 for a body over ``MAX_REQUEST_BYTES``, 411 for a chunked upload).
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Annotated, Literal

import bentoml
from annotated_types import Gt
from bentoml.exceptions import BadInput
from bentoml.validators import ContentType
from pydantic import AllowInfNan

from serving.images import MAX_SIDE, MAX_UPLOAD_BYTES, ImageError, decode, encode_png
from serving.asgi import DocsAlias, MaxBodySize
from serving.model_source import model_dir

PAPER = "noise2score"
Noise = Literal["auto", "gaussian", "poisson", "gamma"]
# Gaussian sigma on 0..255, Poisson zeta or Gamma k: positive and finite (pydantic answers 400).
Level = Annotated[float, Gt(0), AllowInfNan(False)]
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 1024  # one image plus the multipart envelope and fields


def torch_threads() -> int:
    """Intra-op threads for the forward: ``$PAPEROPS_TORCH_THREADS``, else half the cores (at least 1)."""
    if os.environ.get("PAPEROPS_TORCH_THREADS"):
        return max(1, int(os.environ["PAPEROPS_TORCH_THREADS"]))
    return max(1, (os.cpu_count() or 2) // 2)


def _read(image: Path) -> bytes:
    size = image.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise BadInput(f"the image upload is {size} bytes; the limit is {MAX_UPLOAD_BYTES} bytes")
    return image.read_bytes()


@bentoml.service(
    name="noise2score",
    http={"host": "127.0.0.1", "port": 3000},
    # max_concurrency counts requests in flight, queued ones included: over it BentoML answers 429.
    # 8 answered 429 to 101 of 200 requests from 8 concurrent clients (a slot frees only after the
    # response is sent); 64 queues about 64 forwards (~0.5 s at 128x128) before shedding load.
    traffic={"timeout": 120, "max_concurrency": 64},
    workers=1,
)
class Noise2Score:
    """Self-supervised denoising with the Tweedie formula; blind noise-model estimation."""

    def __init__(self) -> None:
        import torch

        from components.registry import get_paper
        from components.papers.noise2score import predict

        # One forward at a time (BentoML runs sync APIs on one thread by default; the lock keeps it
        # so if `threads` is raised). Intra-op threads: half the cores by default. Measured on the
        # 2-core dev box with another process busy: a 128x128 forward took 7 ms on 1 thread and
        # 300 ms on 2 (OpenMP threads waiting on a core they cannot get).
        torch.set_num_threads(torch_threads())
        self.lock = threading.Lock()
        self.paper = get_paper(PAPER)
        self.model_dir = model_dir(PAPER)
        self.model = self.paper.load(self.model_dir)
        self.predict = predict

    @bentoml.api(route="/denoise")
    def denoise(
        self,
        image: Path,
        noise: Noise = "auto",
        level: Level | None = None,
        ctx: bentoml.Context = None,
    ) -> Annotated[Path, ContentType("image/png")]:
        """Denoise a PNG/JPEG (grey or RGB, up to 2048x2048, 8 MiB). ``noise``: auto | gaussian | poisson
        | gamma; ``level``: Gaussian sigma on 0..255, Poisson zeta or Gamma k (estimated when
        omitted). Returns a PNG of the same size and mode; headers X-Noise-Family, X-Noise-Level."""
        if level is not None and not (math.isfinite(level) and level > 0):
            raise BadInput(f"level must be a positive finite number, got {level}")
        try:
            decoded = decode(_read(image))
            with self.lock:
                out = self.predict.denoise(self.model, decoded.pixels, noise=noise, level=level)
        except (ImageError, ValueError) as exc:
            raise BadInput(str(exc)) from None
        ctx.response.headers["X-Noise-Family"] = out["family"]
        ctx.response.headers["X-Noise-Level"] = f"{out['level']:.6g}"
        path = Path(ctx.temp_dir) / "denoised.png"
        path.write_bytes(encode_png(out["image"], decoded.mode))
        return path

    @bentoml.api(route="/estimate")
    def estimate(self, image: Path) -> dict:
        """Estimate the noise model of a PNG/JPEG: ``{"family", "level", "power"}``."""
        try:
            decoded = decode(_read(image))
            with self.lock:
                return self.predict.estimate(self.model, decoded.pixels)
        except (ImageError, ValueError) as exc:
            raise BadInput(str(exc)) from None


Noise2Score.add_asgi_middleware(MaxBodySize, max_bytes=MAX_REQUEST_BYTES)
Noise2Score.add_asgi_middleware(DocsAlias)
Service = Noise2Score
__all__ = ["MAX_SIDE", "Noise2Score", "Service"]
