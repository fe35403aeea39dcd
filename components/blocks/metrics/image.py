"""Image quality: PSNR and SSIM (torchmetrics), on batches of images in [0, 1].

Both are computed per image and then averaged over the batch (the convention of denoising papers'
tables: the mean of per-image PSNRs, not the PSNR of the pooled MSE).
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"expected two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image: ``(B, C, H, W)`` x2 in [0, 1] -> ``(B,)`` (pred clipped to [0, 1])."""
    _check(pred, target)
    return peak_signal_noise_ratio(pred.clamp(0, 1), target, data_range=1.0, dim=(1, 2, 3), reduction="none").reshape(
        -1
    )


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over the batch of the per-image PSNR (dB); ``(B, C, H, W)`` in [0, 1]."""
    return float(psnr_per_image(pred, target).mean())


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean SSIM (Gaussian window 11, sigma 1.5) over the batch; ``(B, C, H, W)`` in [0, 1]."""
    _check(pred, target)
    value = structural_similarity_index_measure(pred.clamp(0, 1), target, data_range=1.0)
    assert isinstance(value, torch.Tensor)  # a tuple only with return_full_image=True
    return float(value)
