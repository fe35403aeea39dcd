"""DiffuseMorph configuration. Defaults are the official 2-D settings (the `paper` scale).

Sources: Kim, Han & Ye, "DiffuseMorph: Unsupervised Deformable Image Registration Using Diffusion
Model", ECCV 2022 (arXiv 2112.05149); official code DiffuseMorph/DiffuseMorph,
config/diffuseMorph_train_2D.json (T = 2000, linear beta 1e-6 -> 1e-2, score U-Net inner channel 64
with multipliers (1, 2, 4, 4), field U-Net encoder (64, 128, 256, 512, 1024), loss_lambda 2, Adam lr
5e-6) and model/model.py (Adam betas (0.5, 0.999)). Image size 128 (RaFD faces).

3-D (``data.dims: 3``): every value the user leaves unset takes the official 3-D setting,
config/diffuseMorph_train_3D.json (``OFFICIAL_3D``): volumes 128 x 128 x 32, score U-Net inner
channel 8 with multipliers (1, 2, 4, 4) and GroupNorm(4) (diffusion_net_3D/unet.py), field U-Net
encoder (16, 32, 32, 32, 32), decoder (32, 32, 32, 8, 8), loss_lambda 20, Adam lr 2e-4.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from components.config import PaperConfig, StrictModel


class DataConfig(StrictModel):
    source: Literal["synthetic", "folder"] = Field("synthetic", description="bundled images warped, or data.path")
    path: str | None = Field(None, description="folder with images/ and labels/ (.npy or .nii/.nii.gz)")
    dims: Literal[2, 3] = Field(2, description="2: images (official 2-D, faces); 3: volumes (official 3-D, ACDC)")
    size: int = Field(128, ge=16, le=512, description="image side, H = W (official 2-D: 128, 3-D: 128)")
    depth: int = Field(32, ge=16, le=256, description="3-D only: volume depth, the last axis (official 3-D: 32)")
    train_pairs: int = Field(2000, ge=2, le=1_000_000)
    test_pairs: int = Field(32, ge=2, le=10_000)
    elastic_alpha: float = Field(3.0, gt=0, le=64, description="max displacement of the random field, pixels at 32")
    elastic_sigma: float = Field(4.0, gt=0, le=64, description="smoothness of the random field, pixels at 32")
    classes: int = Field(3, ge=2, le=8, description="synthetic label classes (intensity quantiles, smoothed image)")
    max_classes: int = Field(64, ge=2, le=256, description="folder: at most this many distinct label values")

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
    field_init: Literal["normal", "he"] = Field(
        "normal", description="field U-Nets' init: official N(0, 0.02); he: He init for narrow CPU widths"
    )


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
    gate_dice_vs_baseline: bool = Field(
        True, description="gate on Dice not below the VoxelMorph-style baseline's beyond noise (the paper's claim)"
    )
    max_step_share: float = Field(
        0.6, gt=0, le=1, description="gate: the largest share of the eta 0 -> 1 displacement change one step may make"
    )


# config/diffuseMorph_train_3D.json (see the module docstring).
OFFICIAL_3D: dict[str, dict[str, Any]] = {
    "data": {"size": 128, "depth": 32},
    "model": {
        "block_out_channels": (8, 16, 32, 32),
        "norm_num_groups": 4,
        "encoder_nc": (16, 32, 32, 32, 32),
        "decoder_nc": (32, 32, 32, 8, 8),
    },
    "train": {"lr": 2e-4, "loss_lambda": 20.0},
}


class DiffuseMorphConfig(PaperConfig):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _official_3d_and_sizes(self) -> DiffuseMorphConfig:
        if self.data.dims == 3:  # every value not given takes the official 3-D one (OFFICIAL_3D)
            for section, preset in OFFICIAL_3D.items():
                sub = getattr(self, section)
                fill = {k: v for k, v in preset.items() if k not in sub.model_fields_set}
                if fill:
                    # a frozen model, filled once while it is being validated (a "before" validator
                    # would turn params.yaml's strict JSON-mode validation into Python mode)
                    object.__setattr__(self, section, sub.model_copy(update=fill))
        # the field U-Net halves every side 4 times; the score U-Net len(block_out_channels) - 1 times
        mult = max(2 ** (len(self.model.block_out_channels) - 1), 16)
        sides = {"data.size": self.data.size, **({"data.depth": self.data.depth} if self.data.dims == 3 else {})}
        for name, side in sides.items():
            if side % mult:
                raise ValueError(f"{name} ({side}) must be a multiple of {mult}")
        if any(c % self.model.norm_num_groups for c in self.model.block_out_channels):
            raise ValueError("model.block_out_channels must be multiples of model.norm_num_groups")
        return self
