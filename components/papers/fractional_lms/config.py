"""Fractional-LMS analysis configuration. Defaults are the paper's experimental settings.

Source: Wahab, Khan, Naseem and Ye, "Performance analysis of fractional learning algorithms",
IEEE TSP 70 (2022), arXiv 2110.05201, and the experiments it analyses (Zubair et al.'s FLMS for
system identification): an FIR plant with negative taps, white and coloured Gaussian input,
SNR 10 and 20 dB, fractional orders 0.25 / 0.5 / 0.75, thousands of iterations, Monte-Carlo
averages over 100+ independent runs. The plant taps below are ours (the paper's Table is not
reproduced here); what matters for the analysis is that some taps are negative.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import PaperConfig, StrictModel

Algorithm = Literal["lms", "nlms", "flms", "flms_signed", "flms_published", "fnlms", "mflms"]
InputKind = Literal["white", "ar1"]


class DataConfig(StrictModel):
    source: Literal["synthetic", "file"] = Field(
        "synthetic", description="synthetic: the FIR plant below; file: x and d from data.path (.csv or .npy)"
    )
    path: str | None = Field(None, description="CSV with columns x,d or an .npy array of shape (N, 2)")
    plant: tuple[float, ...] = Field(
        (0.8, -0.6, 0.4, -0.3, 0.2, -0.1),
        min_length=1,
        max_length=64,
        description="FIR plant taps w_o (negative taps are what breaks the published FLMS)",
    )
    samples: int = Field(4000, ge=16, le=10_000_000, description="length of the training signal (train stage)")
    input: InputKind = Field("white", description="input of the training signal")
    ar_coeff: float = Field(0.5, gt=-1, lt=1, description="AR(1) pole of the coloured input x(n) = a x(n-1) + u(n)")
    snr_db: float = Field(20.0, ge=-20, le=100, description="SNR of the training signal")

    @model_validator(mode="after")
    def _file_needs_path(self) -> DataConfig:
        if self.source == "file" and not self.path:
            raise ValueError("data.path is required when data.source is 'file'")
        return self


class StepConfig(StrictModel):
    """Step sizes shared by the study (Zubair et al.'s FLMS experiments use mu = mu_f)."""

    mu: float = Field(0.005, gt=0, le=2, description="LMS step mu (the conventional term of every algorithm)")
    mu_f: float = Field(0.005, ge=0, le=2, description="fractional step mu_f")
    nlms_mu: float = Field(0.05, gt=0, lt=2, description="NLMS / FNLMS normalised step (stable in (0, 2))")
    nlms_mu_f: float = Field(0.05, ge=0, lt=2, description="FNLMS normalised fractional step")
    momentum: float = Field(0.5, ge=0, lt=1, description="momentum FLMS: alpha (w(n) - w(n-1))")
    eps: float = Field(1e-6, gt=0, description="regulariser of the NLMS normaliser eps + ||x||^2")


class StudyConfig(StrictModel):
    """The Monte-Carlo study of the evaluate stage."""

    orders: tuple[float, ...] = Field((0.25, 0.5, 0.75), min_length=1, description="fractional orders f")
    inputs: tuple[InputKind, ...] = Field(("white", "ar1"), min_length=1)
    snr_db: tuple[float, ...] = Field((10.0, 20.0), min_length=1)
    runs: int = Field(200, ge=2, le=100_000, description="independent Monte-Carlo runs")
    iterations: int = Field(6000, ge=50, le=10_000_000)
    steady_fraction: float = Field(0.2, gt=0, lt=1, description="last fraction of iterations averaged as steady state")
    match_grid: int = Field(24, ge=4, le=200, description="LMS steps tried when matching a steady state")
    match_tolerance_db: float = Field(0.5, gt=0, description="largest steady-state mismatch accepted as matched")
    speed_tolerance: float = Field(
        1.1, ge=1, description="gate: LMS iterations-to-1-dB may exceed the fractional one by at most this factor"
    )
    bootstrap: int = Field(200, ge=10, le=10_000, description="paired bootstrap draws of the speed ratio's bound")
    fsd_iterations: int = Field(2000, ge=10, le=1_000_000, description="fractional steepest descent iterations")
    fsd_step: float = Field(0.1, gt=0, le=1, description="fractional steepest descent step")

    @model_validator(mode="after")
    def _orders(self) -> StudyConfig:
        if not all(0 < f < 1 for f in self.orders):
            raise ValueError(f"study.orders must lie in (0, 1), got {self.orders}")
        return self


class TrainConfig(StrictModel):
    """The registered model: the plant identified from the training signal by one algorithm."""

    algorithm: Algorithm = Field("flms", description="flms = the remedied |w|^(1-f) form")
    taps: int = Field(6, ge=1, le=64, description="adaptive filter length M")
    order: float = Field(0.5, gt=0, le=1, description="fractional order f")
    checkpoint_every: int = Field(1000, ge=1, description="samples between resumable checkpoints")


class FractionalLMSConfig(PaperConfig):
    data: DataConfig = DataConfig()
    steps: StepConfig = StepConfig()
    study: StudyConfig = StudyConfig()
    train: TrainConfig = TrainConfig()
