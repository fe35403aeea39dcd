"""CLIPstyler (arXiv 2112.00374) over HTTP: POST /stylize, GET /progress.

Run: ``paperops serve clipstyler`` (= ``bentoml serve serving.clipstyler:Service``), 127.0.0.1:3000.
The model is the registry's ``champion`` (serving/model_source.py): the text-image model (the CLIP
block, or real CLIP weights it was built from), the content-feature network and the optimisation
settings (and, for the fast variant, one trained network per style text).

* ``POST /stylize``: ``image`` (PNG/JPEG, 8 to 2048 pixels a side, 8 MiB; centre-cropped to a square
  and resized to the model's side), ``text`` (the style, 1 to 80 letters, digits, spaces or , . ' -;
  default the model's first style text) and ``iterations`` in [0, 200] (default the model's, 200 at
  the paper's setting; 0 only for a text the fast variant was trained on) -> PNG of the stylised
  image. One fresh StyleNet is optimised per request (Kwon & Ye 2022, Eq. 7), inside the per-request
  budget (504 past it).
* ``GET /progress``: ``{"running", "iteration", "iterations", "text", "elapsed_s"}`` of the request
  being optimised (a stylisation takes seconds: poll this while it runs), or of the last one.

Bad input answers 400 with ``{"error": "<message>"}`` (413 for a body over the limit, 411 for a
chunked upload).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated, Any

import bentoml
from annotated_types import Ge, Le, MaxLen
from bentoml.validators import ContentType
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.asgi import SlashAlias
from serving.common import PaperService, paper_service, read_upload
from serving.images import MAX_UPLOAD_BYTES, decode, encode_png

MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 1024
Iterations = Annotated[int, Ge(0), Le(200)]
Text = Annotated[str, MaxLen(80)]
PNG = Annotated[Path, ContentType("image/png")]

# What GET /progress answers: the request being optimised (one at a time: the model lock).
_PROGRESS: dict[str, Any] = {"running": False, "iteration": 0, "iterations": 0, "text": None, "elapsed_s": 0.0}
_PROGRESS_LOCK = threading.Lock()


async def _progress(request: Request) -> JSONResponse:
    with _PROGRESS_LOCK:
        return JSONResponse(dict(_PROGRESS))


progress_app = Starlette(routes=[Route("/", _progress, methods=["GET"])])


@paper_service(
    paper="clipstyler",
    title="CLIPstyler: image style transfer with a single text condition (arXiv 2112.00374)",
    description=__doc__,
    timeout=60,
    max_concurrency=16,
    max_request_bytes=MAX_REQUEST_BYTES,
)
class CLIPstyler(PaperService):
    """Stylise an image toward a style text."""

    PAPER = "clipstyler"

    def setup(self) -> None:
        import importlib

        self.predict = importlib.import_module("components.papers.clipstyler.predict")

    @bentoml.api(route="/stylize")
    def stylize(
        self,
        image: Path,
        text: Text | None = None,
        iterations: Iterations | None = None,
        ctx: bentoml.Context = None,
    ) -> PNG:
        """Stylise a PNG/JPEG toward ``text`` with ``iterations`` optimisation steps; returns PNG at the
        model's side. GET /progress reports the running optimisation."""
        budget = self.budget()
        d = decode(read_upload(image, MAX_UPLOAD_BYTES, "image"))
        text = self.model.config["texts"][0] if text is None else text
        with self.lock:
            start = time.monotonic()

            def progress(done: int, total: int) -> None:
                with _PROGRESS_LOCK:
                    _PROGRESS.update(iteration=done, iterations=total, elapsed_s=round(time.monotonic() - start, 3))

            with _PROGRESS_LOCK:
                _PROGRESS.update(running=True, iteration=0, iterations=0, text=text, elapsed_s=0.0)
            try:
                out = self.predict.stylize(
                    self.model, d.pixels, text, iterations, should_stop=budget, progress=progress
                )
            finally:
                with _PROGRESS_LOCK:
                    _PROGRESS.update(running=False, elapsed_s=round(time.monotonic() - start, 3))
        path = Path(ctx.temp_dir) / "stylized.png"
        path.write_bytes(encode_png(out, "RGB"))
        return path


CLIPstyler.mount_asgi_app(progress_app, path="/progress")
CLIPstyler.add_asgi_middleware(SlashAlias, path="/progress")
Service = CLIPstyler
__all__ = ["CLIPstyler", "Service"]
