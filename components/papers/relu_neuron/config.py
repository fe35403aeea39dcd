"""Single-neuron ReLU gradient-flow configuration.

Source: Lee, Sim and Ye, "Support Vectors and Gradient Dynamics of Single-Neuron ReLU Networks",
arXiv 2202.05510 (2022). The paper's experiments train one ReLU neuron with the square loss on
small synthetic datasets, in d = 2 (where global convergence is proved) and in d much larger than
n, from initialisations whose norms span orders of magnitude. There is no official code; the sizes
below (n = 20 samples, d = 2 and 100, scales 1e-4 .. 10, 100 seeds at the paper scale) are ours,
chosen to cover the regimes the issue names. The "positive" settings (positive inputs and labels)
are the ones inside the assumptions we read for the claims (data.py, README.md); the gate asks
100 % there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.config import PaperConfig, StrictModel

DataKind = Literal["positive", "teacher", "general"]


class Setting(StrictModel):
    data: DataKind
    d: int = Field(ge=1, le=1000)
    n: int = Field(ge=1, le=1000)


class ExperimentsConfig(StrictModel):
    settings: tuple[Setting, ...] = Field(
        (
            Setting(data="teacher", d=2, n=20),
            Setting(data="teacher", d=100, n=20),
            Setting(data="general", d=2, n=20),
            Setting(data="general", d=100, n=20),
            # inside the assumptions (data.py): appended last so the other settings keep their seeds
            Setting(data="positive", d=2, n=20),
            Setting(data="positive", d=100, n=20),
        ),
        min_length=1,
    )
    init_scales: tuple[float, ...] = Field((1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0), min_length=1)
    seeds: int = Field(100, ge=1, le=10_000, description="runs (dataset + initialisation) per setting and scale")
    small_scale: float = Field(1e-2, gt=0, description="scales <= this count as 'small initialisation' in the gate")
    noise_std: float = Field(0.1, ge=0, description="label noise of the general data")
    t_max: float = Field(1e5, gt=0, description="integration horizon of the flow")
    grad_tol: float = Field(1e-9, gt=0, description="the flow stops when ||grad L|| falls below this")
    gd_checks: int = Field(6, ge=0, le=1000, description="trajectories re-run with small-step gradient descent")
    gd_lr: float = Field(1e-4, gt=0, le=0.1, description="step of the gradient-descent reference (also run at 10x)")
    gd_horizon: float = Field(1.0, gt=0, description="time up to which flow and gradient descent are compared")
    plot_runs: int = Field(
        1, ge=0, le=100, description="d = 2 trajectories kept per data kind and scale (the first is drawn)"
    )


class TrainConfig(StrictModel):
    """The registered neuron: the gradient-flow limit on the prepared training set."""

    data: DataKind = "teacher"
    d: int = Field(2, ge=1, le=1000)
    n: int = Field(20, ge=1, le=100_000)
    n_test: int = Field(200, ge=1, le=1_000_000)
    init_scale: float = Field(1e-3, gt=0, le=1e3)


class ReluNeuronConfig(PaperConfig):
    experiments: ExperimentsConfig = ExperimentsConfig()
    train: TrainConfig = TrainConfig()
