"""CCDF (arXiv 2112.05146) over HTTP: /super_resolve, /inpaint, /mri_reconstruct(_npy|_image).

Run: ``paperops serve ccdf`` (= ``bentoml serve serving.ccdf:Service``), 127.0.0.1:3000. The model is
the registry's ``champion`` (serving/model_source.py). All endpoints take optional ``steps``
(N, 1..1000), ``t0`` ((0, 1], N' = t0 N <= 200 network evaluations) and ``init`` (network |
simple | tv, the TV-CS estimate); outputs are at most 256 pixels a side, and a request may ask for at most 2**21
pixel x channel x network evaluations (``predict.MAX_WORK``: 256x256 grey at 32 NFE, 128x128 at
128), so the worst allowed request fits the 96 s per-request budget past which the solver stops
(504). Header ``X-NFE`` says how many network evaluations the answer took.

* ``/super_resolve``: ``image`` (PNG/JPEG, the low-resolution image), ``scale`` (2..8; the network
  initialiser only at its trained x4) -> PNG ``scale`` times larger.
* ``/inpaint``: ``image`` and ``mask`` (PNG of the same size; white = known, black = to fill) -> PNG.
* ``/mri_reconstruct``: ``kspace`` (.npy, complex (H, W) or real (H, W, 2), centred orthonormal
  FFT layout, H and W multiples of 4 up to 256) and ``mask`` (.npy, (H, W) or (W,) of 0/1)
  -> PNG of the reconstruction in [0, 1] (normalised by the zero-filled image's maximum).
  ``/mri_reconstruct_npy``: the same inputs -> .npy float32 (H, W) in the k-space's own scale.
  ``/mri_reconstruct_image``: ``image`` (PNG/JPEG) and ``acceleration`` (1..16, default 4): the
  k-space and mask are simulated (the model's mask kind, seeded) and reconstructed -> PNG.
  (A third route rather than optional upload fields on /mri_reconstruct: BentoML 1.4 cannot build
  an input spec for an optional file field.)

Bad input answers 400 with ``{"error": "<message>"}`` (413 for a body over the limit, 411 for a
chunked upload).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import bentoml
import numpy as np
from annotated_types import Ge, Gt, Le
from bentoml.validators import ContentType
from pydantic import AllowInfNan

from serving.common import PaperService, paper_service, read_npy, read_upload
from serving.images import MAX_UPLOAD_BYTES, decode, encode_png

MAX_NPY_BYTES = 2 * 1024 * 1024  # a 256x256 complex128 k-space is 1 MiB
MAX_NPY_ELEMENTS = 256 * 256 * 2
MAX_REQUEST_BYTES = 2 * MAX_UPLOAD_BYTES + 64 * 1024
Steps = Annotated[int, Ge(1), Le(1000)]
T0 = Annotated[float, Gt(0), Le(1), AllowInfNan(False)]
Scale = Annotated[int, Ge(2), Le(8)]
Acceleration = Annotated[float, Ge(1), Le(16), AllowInfNan(False)]
Init = Literal["network", "simple", "tv"]
PNG = Annotated[Path, ContentType("image/png")]


def _npy(upload: Path, what: str) -> np.ndarray:
    arr = read_npy(upload, MAX_NPY_BYTES, MAX_NPY_ELEMENTS, what)
    if arr.ndim > 3:
        raise ValueError(f"{what} must be an array of at most 256x256 (x2), got shape {arr.shape}")
    return arr


@paper_service(
    paper="ccdf",
    title="CCDF: come-closer-diffuse-faster inverse solvers (arXiv 2112.05146)",
    description=__doc__,
    timeout=120,
    max_concurrency=16,
    max_request_bytes=MAX_REQUEST_BYTES,
)
class CCDF(PaperService):
    """Diffusion inverse solvers in few steps: super-resolution, inpainting, CS-MRI."""

    PAPER = "ccdf"

    def setup(self) -> None:
        import importlib

        # the module, not the package's `predict` function of the same name
        self.predict = importlib.import_module("components.papers.ccdf.predict")

    def _png(self, ctx: bentoml.Context, pixels: np.ndarray, mode: str, nfe: int) -> Path:
        ctx.response.headers["X-NFE"] = str(nfe)
        path = Path(ctx.temp_dir) / "out.png"
        path.write_bytes(encode_png(pixels, mode))
        return path

    @bentoml.api(route="/super_resolve")
    def super_resolve(
        self,
        image: Path,
        scale: Scale = 4,
        steps: Steps | None = None,
        t0: T0 | None = None,
        init: Init = "network",
        ctx: bentoml.Context = None,
    ) -> PNG:
        """Super-resolve a low-resolution PNG/JPEG by ``scale`` (average-pooling degradation model)."""
        budget = self.budget()
        d = decode(read_upload(image, MAX_UPLOAD_BYTES, "image"))
        with self.lock:
            out = self.predict.super_resolve(
                self.model, d.pixels, scale=scale, steps=steps, t0=t0, init=init, should_stop=budget
            )
        return self._png(ctx, out["image"], d.mode, out["nfe"])

    @bentoml.api(route="/inpaint")
    def inpaint(
        self,
        image: Path,
        mask: Path,
        steps: Steps | None = None,
        t0: T0 | None = None,
        init: Init = "network",
        ctx: bentoml.Context = None,
    ) -> PNG:
        """Fill the black pixels of ``mask`` (a PNG the size of ``image``; white = known)."""
        budget = self.budget()
        d = decode(read_upload(image, MAX_UPLOAD_BYTES, "image"))
        m = decode(read_upload(mask, MAX_UPLOAD_BYTES, "mask"))
        if m.pixels.shape[:2] != d.pixels.shape[:2]:
            raise ValueError(
                f"mask is {m.pixels.shape[1]}x{m.pixels.shape[0]} but the image is "
                f"{d.pixels.shape[1]}x{d.pixels.shape[0]}"
            )
        with self.lock:
            out = self.predict.inpaint(
                self.model, d.pixels, m.pixels, steps=steps, t0=t0, init=init, should_stop=budget
            )
        return self._png(ctx, out["image"], d.mode, out["nfe"])

    def _mri(self, kspace: Path, mask: Path, steps: int | None, t0: float | None, init: str) -> dict:
        budget = self.budget()
        k, m = _npy(kspace, "kspace"), _npy(mask, "mask")
        with self.lock:
            return self.predict.mri_reconstruct(self.model, k, m, steps=steps, t0=t0, init=init, should_stop=budget)

    @bentoml.api(route="/mri_reconstruct")
    def mri_reconstruct(
        self,
        kspace: Path,
        mask: Path,
        steps: Steps | None = None,
        t0: T0 | None = None,
        init: Init = "network",
        ctx: bentoml.Context = None,
    ) -> PNG:
        """CS-MRI from ``kspace`` and ``mask`` (.npy uploads) -> PNG of the magnitude (normalised to [0, 1])."""
        out = self._mri(kspace, mask, steps, t0, init)
        return self._png(ctx, out["image"], "L", out["nfe"])

    @bentoml.api(route="/mri_reconstruct_npy")
    def mri_reconstruct_npy(
        self,
        kspace: Path,
        mask: Path,
        steps: Steps | None = None,
        t0: T0 | None = None,
        init: Init = "network",
        ctx: bentoml.Context = None,
    ) -> Annotated[Path, ContentType("application/octet-stream")]:
        """CS-MRI from ``kspace`` and ``mask`` (.npy) -> .npy float32 (H, W) in the scale of the k-space's image."""
        out = self._mri(kspace, mask, steps, t0, init)
        ctx.response.headers["X-NFE"] = str(out["nfe"])
        path = Path(ctx.temp_dir) / "reconstruction.npy"
        np.save(path, out["array"], allow_pickle=False)
        return path

    @bentoml.api(route="/mri_reconstruct_image")
    def mri_reconstruct_image(
        self,
        image: Path,
        acceleration: Acceleration = 4.0,
        steps: Steps | None = None,
        t0: T0 | None = None,
        init: Init = "network",
        ctx: bentoml.Context = None,
    ) -> PNG:
        """Simulate single-coil k-space of a PNG/JPEG at ``acceleration`` (the model's mask kind) and
        reconstruct it -> PNG."""
        budget = self.budget()
        d = decode(read_upload(image, MAX_UPLOAD_BYTES, "image"))
        k, m = self.predict.simulate_kspace(self.model, d.pixels, acceleration)
        with self.lock:
            out = self.predict.mri_reconstruct(self.model, k, m, steps=steps, t0=t0, init=init, should_stop=budget)
        return self._png(ctx, out["image"], "L", out["nfe"])


Service = CCDF
__all__ = ["CCDF", "Service"]
