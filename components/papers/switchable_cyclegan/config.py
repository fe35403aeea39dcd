"""Switchable CycleGAN configuration. Defaults are the paper's settings (the `paper` scale).

Sources (official code YSerin/TMI_SwitchableCycleGAN, the architecture the 3-D ultrasound paper
arXiv 2112.02896 builds on): train.py (batch 16, 128x128 crops, lambda_gan 1, lambda_cycle 10,
lambda_identity 5, Adam lr 1e-5 with beta1 0.9, image pool 50 with pool_prob 0.5, 200 epochs),
networks/adain.py (residual U-Net, 64 channels at the top, four poolings, shared MLP of four
Linear layers 128 -> 64 on a constant ones vector, per-layer Linear heads for mean and ReLU'd
sigma), networks/discriminator.py (PatchGAN, 5x5 kernels, InstanceNorm, LeakyReLU 0.2, 64
channels doubling to 512). Data sizes, blur widths and the phantom are ours (the paper uses real
mechanically swept 3-D ultrasound volumes and 2-D B-mode images).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import PaperConfig, StrictModel


class DataConfig(StrictModel):
    source: Literal["synthetic", "folder"] = Field(
        "synthetic", description="synthetic phantoms (with a clean truth) or local folders (volumes_path, images_path)"
    )
    volumes_path: str | None = Field(None, description="folder of 3-D volumes: .npy, .nii, .nii.gz (NIfTI via nibabel)")
    images_path: str | None = Field(None, description="folder of high-quality 2-D images: PNG/JPEG/TIFF or 2-D .npy")
    elevational_axis: int = Field(
        0, ge=0, le=2, description="axis of a real volume swept by the probe (worst resolution)"
    )
    size: int = Field(128, ge=16, le=512, description="phantom side (cube) in voxels")
    crop: int = Field(128, ge=16, le=512, description="training crop side (train.py img_crop_size 128)")
    train_volumes: int = Field(32, ge=1, le=10_000, description="degraded 3-D volumes in the training domain A")
    reference_volumes: int = Field(32, ge=1, le=10_000, description="other phantoms whose clean slices form domain B")
    train_crops: int = Field(8192, ge=8, le=1_000_000, description="random crops per domain written by prepare")
    test_volumes: int = Field(8, ge=1, le=1000, description="held-out degraded volumes with their truth")
    eval_slices: int = Field(16, ge=1, le=512, description="slices per degraded plane and test volume")
    sigma_elevational: float = Field(
        1.5, gt=0, le=20, description="Gaussian blur sigma (voxels) along the elevational axis"
    )
    noise_std: float = Field(0.01, ge=0, le=0.5, description="additive Gaussian noise of the degraded volume")
    speckle_grain: float = Field(1.5, gt=0, le=5, description="sigma of the complex field that makes the speckle grain")

    @model_validator(mode="after")
    def _checks(self) -> DataConfig:
        if self.source == "folder" and not (self.volumes_path and self.images_path):
            raise ValueError("data.volumes_path and data.images_path are required when data.source is 'folder'")
        if self.source == "synthetic" and self.crop > self.size:
            raise ValueError("data.crop must be <= data.size")
        return self


class ModelConfig(StrictModel):
    width: int = Field(64, ge=4, le=256, description="channels of the top U-Net level (adain.py: 64)")
    depth: int = Field(4, ge=1, le=5, description="poolings of the U-Net (adain.py: 4)")
    code_dim: int = Field(64, ge=4, le=512, description="shared MLP width (adain.py: 128 -> 64 x 4 layers)")
    disc_width: int = Field(
        64, ge=4, le=256, description="discriminator channels of the first layer (discriminator.py: 64)"
    )
    disc_layers: int = Field(
        3, ge=1, le=5, description="5x5 conv+IN+LeakyReLU blocks after the first conv (discriminator.py: 3)"
    )


class TrainConfig(StrictModel):
    steps: int = Field(200_000, ge=1, le=10_000_000, description="switchable CycleGAN steps (200 epochs in train.py)")
    baseline_steps: int = Field(
        200_000, ge=0, le=10_000_000, description="plain two-generator CycleGAN steps (0: none)"
    )
    batch_size: int = Field(16, ge=1, le=512, description="train.py batch_size 16")
    lr: float = Field(1e-5, gt=0, le=1.0, description="Adam lr for G and D (train.py 1e-5)")
    beta1: float = Field(0.9, ge=0, lt=1, description="Adam beta1 (train.py 0.9; beta2 0.999)")
    lambda_gan: float = Field(1.0, ge=0, description="train.py lambda_gan")
    lambda_cycle: float = Field(10.0, ge=0, description="train.py lambda_cycle")
    lambda_identity: float = Field(5.0, ge=0, description="train.py lambda_identity")
    pool_size: int = Field(50, ge=0, le=10_000, description="image pool (train.py pool_size 50)")
    pool_prob: float = Field(
        0.5, ge=0, le=1, description="probability of passing the current fake (train.py pool_prob)"
    )
    ema_decay: float = Field(
        0.0,
        ge=0,
        lt=1,
        description=(
            "EMA of the generators' weights, exported instead of the last iterate (0: none, as the official "
            "code, which keeps the best validation epoch on paired data instead; the default scale's lr is 50x "
            "the paper's, and the average damps the noise of the last iterate that this brings)"
        ),
    )
    checkpoint_every: int = Field(1000, ge=1)
    log_every: int = Field(50, ge=1)


class EvalConfig(StrictModel):
    alphas: tuple[float, ...] = Field(
        (0.0, 0.25, 0.5, 0.75, 1.0), min_length=2, description="alpha grid, ascending, 0 and 1 included"
    )
    rl_iterations: int = Field(10, ge=1, le=1000, description="Richardson-Lucy iterations (scikit-image), known PSF")
    z: float = Field(2.0, gt=0, le=10, description="'beyond noise' = paired mean difference > z standard errors")

    @model_validator(mode="after")
    def _grid(self) -> EvalConfig:
        a = self.alphas
        if any(not 0 <= x <= 1 for x in a) or list(a) != sorted(set(a)) or a[0] != 0 or a[-1] != 1:
            raise ValueError("eval.alphas must be strictly ascending in [0, 1] and start at 0 and end at 1")
        return self


class SwitchableCycleGANConfig(PaperConfig):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
