"""Noise2Score-Tweedie configuration. Defaults are the paper's own settings (the `paper` scale).

Sources: the official code (cubeyoung/NoiseAdaptive2Score): options/base_options.py (batch 16,
crop 256), options/train_options.py (Adam, lr 1e-5, beta1 0.9), models/*_model.py (training
noise ranges in ``set_phi``, the AR-DAE sigma grid in ``__init__``, EMA 0.999, gradient clipping
at 1) and models/networks.py (the Noise2Noise U-Net, width 48, five poolings). Evaluation settings
are those of the paper's tables: Gaussian sigma 25 / 50, Poisson zeta 0.01 / 0.05, Gamma k 100 / 50.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import PaperConfig, StrictModel

Family = Literal["gaussian", "poisson", "gamma"]


class DataConfig(StrictModel):
    source: Literal["skimage", "folder"] = Field("skimage", description="skimage: bundled images; folder: data.path")
    path: str | None = Field(None, description="folder of PNG/JPEG/TIFF images (CBSD68, Kodak, DIV2K ...)")
    eval_images: int = Field(3, ge=1, le=1000, description="images held out for evaluation (never trained on)")
    patch_size: int = Field(256, ge=16, le=1024, description="training crop (base_options.py crop_size 256)")
    patches_per_image: int = Field(64, ge=1, le=100_000)
    eval_crop: int = Field(256, ge=16, le=4096, description="central crop of each eval image")

    @model_validator(mode="after")
    def _folder_needs_path(self) -> DataConfig:
        if self.source == "folder" and not self.path:
            raise ValueError("data.path is required when data.source is 'folder'")
        return self


class ModelConfig(StrictModel):
    """The U-Net of the score network; images are RGB (grey ones are repeated over channels)."""

    width: int = Field(48, ge=4, le=256, description="U-Net encoder width (networks.py: 48)")
    depth: int = Field(5, ge=1, le=6, description="U-Net poolings (networks.py: 5)")


class NoiseRanges(StrictModel):
    """Training noise levels, drawn log-uniformly once per batch (models/*_model.py, set_phi)."""

    gaussian: tuple[float, float] = Field((20.0, 55.0), description="sigma on the 0..255 scale")
    poisson: tuple[float, float] = Field((0.005, 0.1), description="zeta: y = zeta * Poisson(x / zeta)")
    gamma: tuple[float, float] = Field((40.0, 120.0), description="k: y = x * Gamma(k, 1/k)")

    @model_validator(mode="after")
    def _ordered(self) -> NoiseRanges:
        for name in ("gaussian", "poisson", "gamma"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"noise range {name} must satisfy 0 < low <= high, got ({lo}, {hi})")
        return self


class TrainConfig(StrictModel):
    families: tuple[Family, ...] = Field(("gaussian", "poisson", "gamma"), min_length=1)
    steps: int = Field(200_000, ge=1, le=10_000_000, description="steps per score network")
    baseline_steps: int = Field(200_000, ge=0, le=10_000_000, description="steps per Noise2Clean network (0: none)")
    batch_size: int = Field(16, ge=1, le=1024)
    lr: float = Field(1e-5, gt=0, le=1.0, description="Adam (train_options.py lr 1e-5, beta1 0.9)")
    sigma_min: float = Field(1e-3, gt=0, description="AR-DAE perturbation grid, smallest (models/*_model.py)")
    sigma_max: float = Field(0.1, gt=0, description="AR-DAE perturbation grid, largest")
    sigma_levels: int = Field(22_000, ge=1, description="grid size (2 * 11000 in the official code)")
    grad_clip: float = Field(1.0, gt=0)
    ema_decay: float = Field(
        0.999, ge=0, lt=1, description="EMA decay (models/*_model.py 0.999; warm-up of models/ema.py)"
    )
    noise: NoiseRanges = NoiseRanges()
    checkpoint_every: int = Field(1000, ge=1)
    log_every: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _grid(self) -> TrainConfig:
        if self.sigma_min > self.sigma_max:
            raise ValueError("train.sigma_min must be <= train.sigma_max")
        return self


class EvalConfig(StrictModel):
    """Evaluation: the six settings are the paper's (noise.EVAL_SETTINGS); images come from ``data``."""

    fd_epsilon: float = Field(
        1e-5, gt=0, le=1e-2, description="finite-difference step of the estimator (models/*_model.py: 1e-5)"
    )
    power_method: Literal["slope", "official"] = Field(
        "slope",
        description="Tweedie-power estimator: 'official' = noise_model_estimation of models/Gaussian_model.py "
        "(unreliable even on exact scores, see estimate.py); 'slope' = our log-log fit of -1/l'' against y",
    )


class Noise2ScoreConfig(PaperConfig):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
