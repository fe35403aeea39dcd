"""Image quality: PSNR and SSIM (torchmetrics), on images in [0, 1]."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of ``pred`` against ``target``, both ``(B, C, H, W)`` in [0, 1] (pred clipped)."""
    return float(peak_signal_noise_ratio(pred.clamp(0, 1), target, data_range=1.0))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """SSIM (Gaussian window 11, sigma 1.5) of ``pred`` against ``target``, ``(B, C, H, W)`` in [0, 1]."""
    return float(structural_similarity_index_measure(pred.clamp(0, 1), target, data_range=1.0))
