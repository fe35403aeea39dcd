"""DiffusionCLIP (arXiv 2110.02711) over HTTP: POST /manipulate, GET /targets.

Run: ``paperops serve diffusionclip`` (= ``bentoml serve serving.diffusionclip:Service``), 127.0.0.1:3000.
The model is the registry's ``champion`` (serving/model_source.py): the trained DDPM and one
CLIP-guided fine-tuned copy per target text.

* ``GET /targets``: ``{"targets": [{"name", "source", "target"}], "size", "t0", "steps"}``, the
  target texts this model was fine-tuned for (``name`` is what ``/manipulate`` takes).
* ``POST /manipulate``: ``image`` (PNG/JPEG, 8 to 2048 pixels a side, 8 MiB; centre-cropped to a
  square and resized to the model's side), ``target`` (a name from ``/targets``; default the first),
  ``strength`` in [0, 1] (``model_ratio``: eps = strength eps_target + (1 - strength) eps_original;
  default 1) and ``t0`` in [1, 999] (the return step of the deterministic DDIM inversion; default
  the model's) -> PNG of the edited image at the model's side. At most 2 x 40 steps of a small
  U-Net per request (plus one evaluation per step at strength strictly between 0 and 1), inside the
  per-request budget (504 past it).

Bad input answers 400 with ``{"error": "<message>"}`` (an unknown target names the known ones; 413
for a body over the limit, 411 for a chunked upload).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import bentoml
from annotated_types import Ge, Le, MaxLen
from bentoml.validators import ContentType
from pydantic import AllowInfNan
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.asgi import SlashAlias
from serving.common import PaperService, paper_service, read_upload
from serving.images import MAX_UPLOAD_BYTES, decode, encode_png

MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 1024
Strength = Annotated[float, Ge(0), Le(1), AllowInfNan(False)]
T0 = Annotated[int, Ge(1), Le(999)]
TargetName = Annotated[str, MaxLen(32)]
PNG = Annotated[Path, ContentType("image/png")]

# What GET /targets answers: filled when the worker's service instance has loaded its model.
_TARGETS: dict[str, Any] = {}


async def _targets(request: Request) -> JSONResponse:
    if not _TARGETS:
        return JSONResponse({"error": "the model is not loaded yet"}, status_code=503)
    return JSONResponse(_TARGETS)


targets_app = Starlette(routes=[Route("/", _targets, methods=["GET"])])


@paper_service(
    paper="diffusionclip",
    title="DiffusionCLIP: text-guided manipulation with fine-tuned diffusion models (arXiv 2110.02711)",
    description=__doc__,
    timeout=60,
    max_concurrency=16,
    max_request_bytes=MAX_REQUEST_BYTES,
)
class DiffusionCLIP(PaperService):
    """Edit an image toward one of the model's fine-tuned target texts."""

    PAPER = "diffusionclip"

    def setup(self) -> None:
        import importlib

        self.predict = importlib.import_module("components.papers.diffusionclip.predict")
        s = self.model.config["sampling"]
        _TARGETS.update(
            targets=self.predict.targets(self.model), size=self.model.size, t0=int(s["t0"]), steps=int(s["n_gen"])
        )

    @bentoml.api(route="/manipulate")
    def manipulate(
        self,
        image: Path,
        target: TargetName | None = None,
        strength: Strength = 1.0,
        t0: T0 | None = None,
        ctx: bentoml.Context = None,
    ) -> PNG:
        """Manipulate a PNG/JPEG toward ``target`` (a name of GET /targets) with ``strength`` in [0, 1]
        at return step ``t0``; returns the edited image as PNG at the model's side."""
        budget = self.budget()
        d = decode(read_upload(image, MAX_UPLOAD_BYTES, "image"))
        with self.lock:
            out = self.predict.manipulate(
                self.model, d.pixels, target=target, strength=strength, t0=t0, should_stop=budget
            )
        path = Path(ctx.temp_dir) / "manipulated.png"
        path.write_bytes(encode_png(out, "RGB"))
        return path


DiffusionCLIP.mount_asgi_app(targets_app, path="/targets")
DiffusionCLIP.add_asgi_middleware(SlashAlias, path="/targets")
Service = DiffusionCLIP
__all__ = ["DiffusionCLIP", "Service"]
