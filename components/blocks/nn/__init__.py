"""Network architectures shared across papers."""

from components.blocks.nn.unet import N2NUNet

__all__ = ["N2NUNet"]
