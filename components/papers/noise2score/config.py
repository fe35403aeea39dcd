"""Noise2Score-Tweedie configuration. Defaults are the paper's own settings (the `paper` scale).

Sources: the official code of this paper (cubeyoung/NoiseAdaptive2Score): options/base_options.py
(batch 16, crop 256), options/train_options.py (Adam, lr 1e-5, beta1 0.9), models/*_model.py
(training noise ranges in ``set_phi``, EMA 0.999, gradient clipping at 1, the Poisson model's
sigma_a range [0.03, 0.1]) and models/networks.py (the Noise2Noise U-Net, width 48, five poolings);
the sigma_a annealing 0.05 -> 0.001 of the Gaussian and Gamma models of the NeurIPS'21 Noise2Score
code (cubeyoung/Noise2Score models/Gaussian_model.py, models/Gamma_model.py, ``set_sigma``).
Evaluation settings are the paper's tables' (Gaussian sigma 25 / 50, Poisson zeta 0.01 / 0.05,
Gamma k 100 / 50) plus Gaussian sigma 15.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import PaperConfig, StrictModel

Family = Literal["gaussian", "poisson", "gamma"]


# Held out by name from the bundled photographs: three grey and three colour pictures (never trained on).
EVAL_NAMES = ("camera", "coins", "moon", "astronaut", "chelsea", "coffee")


class DataConfig(StrictModel):
    source: Literal["skimage", "folder"] = Field("skimage", description="skimage: bundled images; folder: data.path")
    path: str | None = Field(None, description="folder of PNG/JPEG/TIFF images (CBSD68, Kodak, DIV2K ...)")
    eval_names: tuple[str, ...] = Field(EVAL_NAMES, description="images held out for evaluation, by name (file stem)")
    eval_images: int = Field(6, ge=1, le=1000, description="how many of eval_names to evaluate on")
    patch_size: int = Field(256, ge=16, le=1024, description="training crop (base_options.py crop_size 256)")
    max_side: int = Field(1024, ge=64, le=8192, description="training images larger than this are downscaled")
    grey_fraction: float = Field(0.25, ge=0, le=1, description="training crops turned grey (augmentation)")
    zoom: float = Field(
        1.0, ge=1.0, le=8.0, description="training crops magnified by a log-uniform factor in [1, zoom] (ours; 1: none)"
    )
    eval_crop: int = Field(256, ge=16, le=4096, description="central crop of each eval image")

    @model_validator(mode="after")
    def _folder_needs_path(self) -> DataConfig:
        if self.source == "folder" and not self.path:
            raise ValueError("data.path is required when data.source is 'folder'")
        return self


class ModelConfig(StrictModel):
    """The U-Net of the score network (model.py); images are RGB (grey ones are repeated over channels)."""

    width: int = Field(48, ge=4, le=256, description="U-Net encoder width (networks.py: 48)")
    depth: int = Field(5, ge=1, le=6, description="U-Net poolings (networks.py: 5)")
    bank: tuple[float, ...] = Field(
        (1.0,),
        min_length=1,
        description="px of the fixed Gaussian blurs the image estimate D mixes per pixel (ours; model.py); "
        "(0, 1, 2, 4) measured 1-2 dB worse than (1,) at the default scale",
    )

    @model_validator(mode="after")
    def _widths(self) -> ModelConfig:
        if not all(0 <= b <= 16 for b in self.bank):
            raise ValueError(f"blur widths must lie in [0, 16] px, got {self.bank}")
        return self


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


class SigmaA(StrictModel):
    """The AR-DAE perturbation sigma_a per family (``losses.py`` explains why it matters)."""

    schedule: Literal["anneal", "grid"] = Field(
        "anneal", description="anneal: Noise2Score set_sigma (linear max -> min, then held); grid: CVPR'22 log grid"
    )
    gaussian: tuple[float, float] = Field((1e-3, 0.05), description="(min, max): Noise2Score Gaussian_model.py")
    poisson: tuple[float, float] = Field(
        (0.5, 1.0),
        description="Noise2Score Poisson_model.py: 1 -> 0.5 on counts y / zeta, i.e. in units of zeta (half to one "
        "step of the zeta-lattice of y); NoiseAdaptive2Score's Poisson_model.py: (0.03, 0.1) in image units",
    )
    poisson_units: Literal["zeta", "image"] = Field("zeta", description="the unit of ``poisson``")
    gamma: tuple[float, float] = Field((1e-3, 0.05), description="Noise2Score Gamma_model.py")
    anneal_steps: int = Field(
        1375, ge=1, description="steps to reach min (official: 22000 samples = 1375 batches of 16, per epoch)"
    )
    levels: int = Field(22_000, ge=1, description="grid size for schedule=grid (2 * 11000 in the official code)")

    @model_validator(mode="after")
    def _ordered(self) -> SigmaA:
        for name in ("gaussian", "poisson", "gamma"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"sigma_a range {name} must satisfy 0 < min <= max, got ({lo}, {hi})")
        return self


class TrainConfig(StrictModel):
    families: tuple[Family, ...] = Field(("gaussian", "poisson", "gamma"), min_length=1)
    steps: int = Field(200_000, ge=1, le=10_000_000, description="steps per score network")
    baseline_steps: int = Field(200_000, ge=0, le=10_000_000, description="steps per Noise2Clean network (0: none)")
    batch_size: int = Field(16, ge=1, le=1024)
    lr: float = Field(1e-5, gt=0, le=1.0, description="Adam (train_options.py lr 1e-5, beta1 0.9)")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="constant (official) or cosine decay to 0 over the phase (ours, for short runs)"
    )
    sigma_a: SigmaA = SigmaA()
    antithetic: bool = Field(
        False, description="evaluate the AR-DAE loss at u and -u (same loss, lower-variance estimate; ours)"
    )
    threads: int = Field(0, ge=0, le=256, description="torch CPU threads (0: leave torch's default)")
    grad_clip: float = Field(1.0, gt=0)
    ema_decay: float = Field(
        0.999, ge=0, lt=1, description="EMA decay (models/*_model.py 0.999; warm-up of models/ema.py)"
    )
    noise: NoiseRanges = NoiseRanges()
    checkpoint_every: int = Field(1000, ge=1)
    log_every: int = Field(50, ge=1)


class EstimateConfig(StrictModel):
    """Blind estimation (ours): the family from the residual variance (variance.py) or the AR-DAE loss,
    the level by the AR-DAE loss of each candidate level (estimate.py)."""

    family: Literal["variance", "matching"] = Field(
        "variance", description="variance: Tweedie variance function of y - D(y); matching: least AR-DAE loss"
    )
    sigma_a: float = Field(0.01, gt=0, le=0.1, description="the probe's perturbation")
    grid: int = Field(5, ge=3, le=33, description="levels per family before the parabolic refinement")


class EvalConfig(StrictModel):
    """Evaluation: the seven settings (noise.EVAL_SETTINGS); images come from ``data``."""

    estimate: EstimateConfig = EstimateConfig()
    bm3d: bool = Field(True, description="run the BM3D baseline (the bm3d package; the slowest part of evaluate)")
    bm3d_names: tuple[str, ...] | None = Field(
        None, description="eval images BM3D runs on (None: all); its paired differences are over these"
    )


class Noise2ScoreConfig(PaperConfig):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
