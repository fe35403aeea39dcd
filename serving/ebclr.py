"""EBCLR (arXiv 2202.04933) over HTTP: /embed and /classify, batched in process.

Run: ``paperops serve ebclr`` (= ``bentoml serve serving.ebclr:Service``), 127.0.0.1:3000. The model
is the registry's ``champion`` (serving/model_source.py).

* ``POST /embed``: multipart ``images`` (one or more PNG/JPEG files) or JSON ``{"arrays": ...}`` (one
  (H, W) array, a batch (N, H, W) or (N, H, W, C), values in [0, 1]); returns the encoder features.
* ``POST /classify``: multipart ``image`` or JSON ``{"array": (H, W) or (H, W, C)}``; returns the
  linear probe's label and class probabilities.

Both prepare their images per request, then share the encoder forward through one in-process
``MicroBatcher`` (serving/batching.py): concurrent requests join one batch of up to ``MAX_BATCH``
images, without BentoML's HTTP self-proxy (whose internal call counted twice against
``max_concurrency``). Bounds: ``MAX_IMAGES`` per request, sides 4..512 (predict.py), 8 MiB per
upload and ``MAX_REQUEST_BYTES`` per request (413 above it). Bad input answers 400 with
``{"error": "<message>"}``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import anyio
import bentoml
import numpy as np
from pydantic import Field

from serving.batching import MicroBatcher
from serving.common import PaperService, paper_service, read_upload
from serving.images import MAX_UPLOAD_BYTES, decode

MAX_IMAGES = 64  # images per request
MAX_REQUEST_BYTES = 16 * 1024 * 1024
# A full batch (256 prepared 16x16 images) through the width-8 encoder took 17 ms on one thread of
# the 2-core dev box, 8 images 1.8 ms (benchmarks/ebclr_serving.py prints both).
MAX_BATCH = 256


def _read(path: Path) -> np.ndarray:
    pixels = decode(read_upload(path, MAX_UPLOAD_BYTES, "image")).pixels
    return pixels if pixels.ndim == 3 else pixels[..., None]  # (H, W, C)


@paper_service(
    paper="ebclr",
    title="EBCLR energy-based contrastive learning (arXiv 2202.04933)",
    description=__doc__,
    timeout=60,
    max_concurrency=64,
    max_request_bytes=MAX_REQUEST_BYTES,
)
class EBCLR(PaperService):
    """Embeddings of the EBCLR encoder and the classes of its linear probe."""

    PAPER = "ebclr"
    TORCH_THREADS = 1

    def setup(self) -> None:
        # the module, not the package's `predict` function of the same name
        self.predict = importlib.import_module("components.papers.ebclr.predict")
        self.batcher = MicroBatcher(self._encode, MAX_BATCH)

    def _encode(self, pixels: np.ndarray) -> np.ndarray:
        """Encoder features ``(n, D)`` of prepared pixels ``(n, C, S, S)`` in [-1, 1] (one batch)."""
        import torch

        with self.lock:
            return self.predict.encode(self.model, torch.from_numpy(np.ascontiguousarray(pixels))).numpy()

    def _prepare(self, images: list[Path] | None, arrays: Any) -> np.ndarray:
        if (images is None) == (arrays is None):
            raise ValueError("send either multipart files `images` or JSON `arrays`, not both or neither")
        if images is not None:
            if not 1 <= len(images) <= MAX_IMAGES:
                raise ValueError(f"send between 1 and {MAX_IMAGES} images, got {len(images)}")
            decoded = [_read(p) for p in images]
            channels = max(d.shape[2] for d in decoded)
            batch = [
                self.predict.prepare_batch(self.model, np.repeat(d, channels // d.shape[2], axis=2)[None])
                for d in decoded
            ]
            return np.concatenate([b.numpy() for b in batch])
        arr = np.asarray(arrays, dtype=np.float32)
        if arr.ndim >= 3 and len(arr) > MAX_IMAGES:
            raise ValueError(f"send between 1 and {MAX_IMAGES} images, got {len(arr)}")
        return self.predict.prepare_batch(self.model, arr).numpy()

    # File fields are `list[Path]` defaulting to empty: BentoML 1.4 cannot build an input model
    # for Optional[Path] or Optional[list[Path]] ("unhashable type: 'FileSchema'").
    @bentoml.api(route="/embed")
    async def embed(self, images: list[Path] = Field(default_factory=list), arrays: list | None = None) -> dict:  # noqa: UP007
        """Embeddings of one or more images: ``{"embeddings": [[...]], "dim": D, "count": N}``."""
        x = await anyio.to_thread.run_sync(self._prepare, images or None, arrays)
        feats = await self.batcher(x)
        return {"embeddings": feats.tolist(), "dim": int(feats.shape[1]), "count": int(feats.shape[0])}

    @bentoml.api(route="/classify")
    async def classify(self, image: list[Path] = Field(default_factory=list), array: list | None = None) -> dict:  # noqa: UP007
        """Label and class probabilities of one image (multipart ``image`` or JSON ``array``)."""
        if len(image) > 1:
            raise ValueError(f"send exactly one image, got {len(image)}")
        x = await anyio.to_thread.run_sync(self._prepare, image or None, [array] if array is not None else None)
        if len(x) != 1:
            raise ValueError("send exactly one image")
        import torch

        probs = self.predict.probabilities(self.model, torch.from_numpy(await self.batcher(x)))[0]
        classes = self.model.classes
        return {
            "label": classes[int(probs.argmax())],
            "probabilities": {c: float(p) for c, p in zip(classes, probs, strict=True)},
        }


Service = EBCLR
__all__ = ["EBCLR", "MAX_BATCH", "Service"]
