"""DiffuseMorph (arXiv 2112.05149) over HTTP: /register.

Run: ``paperops serve diffusemorph`` (= ``bentoml serve serving.diffusemorph:Service``), 127.0.0.1:3000.
The model is the registry's ``champion`` (serving/model_source.py), a 2-D model.

``POST /register`` (multipart): ``moving`` and ``fixed``, PNG or JPEG images of the same size
(grey or colour, 8x8 to 1024x1024, 8 MiB each; registered on grey at the trained size, the flow
resized back to the upload's size); ``eta`` in [0, 1] (default 1: the full deformation; smaller
values give the intermediate deformations of the continuum); ``return``: ``warped`` (default: the
moving image warped onto the fixed one, PNG in the moving image's mode) or ``flow`` (.npy float32
``(2, H, W)``, pixels, channel 0 rows and 1 columns: the warped image at x is the moving image at
x + flow(x)). Headers: ``X-Folding-Percent`` (% of pixels with det(I + grad u) <= 0, no labels
needed), ``X-Mean-Displacement`` (pixels), ``X-Eta``. Bad input answers 400 with
``{"error": "<message>"}`` (sizes differ, not an image, eta outside [0, 1], a 3-D model).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Literal

import bentoml
import numpy as np
from annotated_types import Ge, Le
from pydantic import AllowInfNan, Field

from serving.common import PaperService, paper_service, read_upload
from serving.images import MAX_UPLOAD_BYTES, decode, encode_png

MAX_SIDE = 1024  # components/papers/diffusemorph/predict.py MAX_SIDE
Eta = Annotated[float, Ge(0), Le(1), AllowInfNan(False), Field(examples=[1.0, 0.5])]
MAX_REQUEST_BYTES = 2 * MAX_UPLOAD_BYTES + 64 * 1024  # two images plus the multipart envelope and fields


# One registration is one score-net and one field-net forward at the trained size plus a warp at
# the upload's size: ~20 ms at 1024x1024 on one CPU thread; 64 requests in flight queue about a second.
@paper_service(
    paper="diffusemorph",
    title="DiffuseMorph deformable registration (arXiv 2112.05149)",
    description=__doc__,
    timeout=60,
    max_concurrency=64,
    max_request_bytes=MAX_REQUEST_BYTES,
)
class DiffuseMorph(PaperService):
    """Diffusion-based deformable registration with a continuum of deformations (eta)."""

    PAPER = "diffusemorph"

    def setup(self) -> None:
        import importlib

        # the module, not the package's ``predict`` function that shadows its name
        self.predict = importlib.import_module("components.papers.diffusemorph.predict")
        if self.model.dims != 2:
            from serving.common import fail_startup

            fail_startup(self.PAPER, "the champion is a 3-D model; /register takes 2-D images")

    @bentoml.api(route="/register")
    def register(
        self,
        moving: Path,
        fixed: Path,
        eta: Eta = 1.0,
        return_: Annotated[Literal["warped", "flow"], Field(alias="return", examples=["warped", "flow"])] = "warped",
        ctx: bentoml.Context = None,
    ) -> Path:
        """Register ``moving`` onto ``fixed`` (PNG/JPEG, same size, up to 1024x1024, 8 MiB each).
        ``eta`` in [0, 1] scales the score (the deformation continuum); ``return``: warped (PNG) or
        flow (.npy float32 (2, H, W) in pixels). Headers X-Folding-Percent, X-Mean-Displacement, X-Eta."""
        m = decode(read_upload(moving, MAX_UPLOAD_BYTES, "moving"))
        f = decode(read_upload(fixed, MAX_UPLOAD_BYTES, "fixed"))
        if m.pixels.shape[:2] != f.pixels.shape[:2]:
            raise ValueError(
                f"moving is {m.pixels.shape[1]}x{m.pixels.shape[0]} but fixed is "
                f"{f.pixels.shape[1]}x{f.pixels.shape[0]}; they must be the same size"
            )
        if max(m.pixels.shape[:2]) > MAX_SIDE:
            raise ValueError(f"images are {m.pixels.shape[1]}x{m.pixels.shape[0]}; at most {MAX_SIDE} a side")
        with self.lock:
            out = self.predict.register(self.model, m.pixels, f.pixels, eta=eta)
        ctx.response.headers["X-Folding-Percent"] = f"{out['folding_pct']:.4f}"
        ctx.response.headers["X-Mean-Displacement"] = f"{out['mean_displacement']:.4f}"
        ctx.response.headers["X-Eta"] = f"{eta:g}"
        if return_ == "flow":
            path = Path(ctx.temp_dir) / "flow.npy"
            buf = io.BytesIO()
            np.save(buf, out["flow"].astype(np.float32), allow_pickle=False)
            path.write_bytes(buf.getvalue())
            return path
        path = Path(ctx.temp_dir) / "warped.png"
        path.write_bytes(encode_png(out["warped"], m.mode))
        return path


Service = DiffuseMorph
__all__ = ["MAX_SIDE", "DiffuseMorph", "Service"]
