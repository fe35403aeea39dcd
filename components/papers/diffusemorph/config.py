"""DiffuseMorph configuration. Defaults are the official 2-D settings (the `paper` scale).

Sources: Kim, Han & Ye, "DiffuseMorph: Unsupervised Deformable Image Registration Using Diffusion
Model", ECCV 2022 (arXiv 2112.05149); official code DiffuseMorph/DiffuseMorph,
config/diffuseMorph_train_2D.json (T = 2000, linear beta 1e-6 -> 1e-2, score U-Net inner channel 64
with multipliers (1, 2, 4, 4), field U-Net encoder (64, 128, 256, 512, 1024), loss_lambda 2, Adam lr
5e-6) and model/model.py (Adam betas (0.5, 0.999)). Image size 128 (RaFD faces).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import PaperConfig, StrictModel


class DataConfig(StrictModel):
    source: Literal["synthetic", "folder"] = Field("synthetic", description="bundled images warped, or data.path")
    path: str | None = Field(None, description="folder with images/ and labels/ (.npy or .nii/.nii.gz)")
    size: int = Field(128, ge=16, le=512, description="image side (official 2-D: 128)")
    train_pairs: int = Field(2000, ge=2, le=1_000_000)
    test_pairs: int = Field(32, ge=2, le=10_000)
    elastic_alpha: float = Field(3.0, gt=0, le=64, description="max displacement of the random field, pixels at 32")
    elastic_sigma: float = Field(4.0, gt=0, le=64, description="smoothness of the random field, pixels at 32")
    classes: int = Field(3, ge=2, le=8, description="label classes (intensity tertiles of the smoothed image)")

    @model_validator(mode="after")
    def _path(self) -> DataConfig:
        if self.source == "folder" and not self.path:
            raise ValueError("data.path is required when data.source is 'folder'")
        return self


class ModelConfig(StrictModel):
    block_out_channels: tuple[int, ...] = Field((64, 128, 256, 256), min_length=2, max_length=6)
    layers_per_block: int = Field(1, ge=1, le=4, description="official res_blocks: 1")
    attention: bool = Field(True, description="official attn_res [8]")
    norm_num_groups: int = Field(32, ge=1, le=64)
    encoder_nc: tuple[int, ...] = Field((64, 128, 256, 512, 1024), min_length=5, max_length=5)
    decoder_nc: tuple[int, ...] = Field((1024, 512, 256, 128, 64), min_length=5, max_length=5)


class TrainConfig(StrictModel):
    steps: int = Field(100_000, ge=1, le=10_000_000)
    batch_size: int = Field(1, ge=1, le=1024, description="official: 1")
    lr: float = Field(5e-6, gt=0, le=1.0, description="official 2-D: 5e-6")
    loss_lambda: float = Field(2.0, ge=0, description="official 2-D: 2 (3-D: 20)")
    checkpoint_every: int = Field(1000, ge=1)
    log_every: int = Field(100, ge=1)


class DiffusionConfig(StrictModel):
    num_train_timesteps: int = Field(2000, ge=10, le=4000, description="official: 2000")
    beta_start: float = Field(1e-6, gt=0, lt=1, description="official: 1e-6")
    beta_end: float = Field(1e-2, gt=0, lt=1, description="official: 1e-2")


class EvalConfig(StrictModel):
    etas: tuple[float, ...] = Field((0.0, 0.25, 0.5, 0.75, 1.0), min_length=2, description="official nsample 7")
    z: float = Field(2.0, gt=0, description="standard errors a gated difference must clear")
    folding_margin: float = Field(0.1, ge=0, description="gate: folding % may exceed the baseline's by this")


class DiffuseMorphConfig(PaperConfig):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _sizes(self) -> DiffuseMorphConfig:
        mult = max(2 ** (len(self.model.block_out_channels) - 1), 16)
        if self.data.size % mult:
            raise ValueError(f"data.size ({self.data.size}) must be a multiple of {mult}")
        return self
