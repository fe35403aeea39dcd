"""The image pool (history buffer) the discriminators are trained on (official utils/image_pool.py).

Shrivastava et al. 2017 / CycleGAN: per generated image, while the pool holds fewer than ``size``
images the image is stored and returned; afterwards, with probability ``1 - prob`` a random stored
image is returned and replaced by the new one, else the new image itself is returned (train.py:
size 50, prob 0.5). Draws come from a torch.Generator and the buffer is one tensor, so the pool's
state is checkpointed and a resumed run draws exactly what an uninterrupted one draws.
"""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    """History of generated images ``(n, C, H, W)``, n <= size."""

    def __init__(self, size: int, prob: float = 0.5) -> None:
        self.size, self.prob = int(size), float(prob)
        self.images: torch.Tensor | None = None  # (n, C, H, W), filled up to ``size``

    def query(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``(B, C, H, W)`` fakes (detached inside) -> ``(B, C, H, W)`` for the discriminator."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for img in images:
            img = img[None].clone()
            n = 0 if self.images is None else len(self.images)
            if n < self.size:
                self.images = img if self.images is None else torch.cat([self.images, img])
                out.append(img)
            elif float(torch.rand((), generator=gen)) > self.prob:
                assert self.images is not None  # n >= size > 0 images are stored
                j = int(torch.randint(self.size, (), generator=gen))
                old = self.images[j : j + 1].clone()
                self.images[j] = img[0]
                out.append(old)
            else:
                out.append(img)
        return torch.cat(out)

    def state(self) -> dict[str, Any]:
        return {"images": self.images.cpu() if self.images is not None else torch.zeros(0)}

    def load(self, state: dict[str, Any], device: torch.device) -> None:
        imgs = state["images"]
        self.images = imgs.to(device) if imgs.numel() else None
