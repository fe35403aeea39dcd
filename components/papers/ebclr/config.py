"""EBCLR configuration. Defaults are the paper's / official code's settings (the `paper` scale).

Sources (github 1202kbs/EBCLR): configs_ebclr/mnist_b128.yaml and mnist_b16.yaml (EBCLR: temperature
0.1, lmda1 0.001, lmda2 0.1, SGLD iter 10 / lr 0.05 / std 0.05 -> 0.01 / threshold 3 / tau 1.0,
buffer CD_ratio 1.0, size 50000, rho 0.4 on MNIST (0.2 on CIFAR), Adam 2e-4 (1e-4 at batch 16),
200 epochs, crop scale (0.08, 1), noise std 0.03), configs_simclr/mnist_b128.yaml (SGD 0.015 at
batch 128, linearly scaled: 0.001875 at batch 16; weight decay 1e-4; batch norm; ReLU),
configs_moco/mnist_b256.yaml (SGD 0.03 at batch 256, queue 65536, momentum 0.999, temperature 0.07),
libs/net.py + libs/resnets.py (ResNet-18, projection 512 -> 512 -> 128).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import PaperConfig, StrictModel

Method = Literal["ebclr", "ebclr_lambda2_0", "simclr", "moco"]
# ebclr_lambda2_0: the ablation of the issue, EBCLR's own no-BN LeakyReLU network, optimiser, data and
# initialisation with lambda2 = 0, i.e. NT-Xent(-||.||^2) alone: what the generative term adds.


class DataConfig(StrictModel):
    source: Literal["digits", "patches", "mnist", "fmnist", "cifar10", "cifar100"] = Field(
        "mnist",
        description="digits: scikit-learn's bundled digits; patches: grey patches of the bundled scikit-image "
        "photographs, labelled by photograph (components/blocks/data/patches.py); the others read data.path "
        "(no download)",
    )
    path: str | None = Field(
        "data/external",
        description="torchvision-layout folder for mnist/fmnist/cifar10/cifar100 (relative: to the root)",
    )
    image_size: int = Field(28, ge=8, le=64, description="side the images are resized to (MNIST: 28)")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="digits only: held-out fraction (stratified)")
    train_limit: int = Field(0, ge=0, description="use only the first N training images (0: all)")
    patch: int = Field(32, ge=8, le=256, description="patches: crop side in the shrunk photograph")
    patch_scale: float = Field(0.5, gt=0, le=1, description="patches: shrink factor of each photograph")
    patches_train: int = Field(160, ge=1, le=10_000, description="patches: training patches per photograph")
    patches_test: int = Field(150, ge=1, le=10_000, description="patches: test patches per photograph")
    patch_standardize: bool = Field(
        True, description="patches: per-patch mean 0.5 / std 0.2 (brightness alone names some photos)"
    )
    crop_scale: tuple[float, float] = Field(
        (0.08, 1.0), description="RandomResizedCrop scale (configs_ebclr t.crop_scale)"
    )
    noise_std: float = Field(0.03, ge=0, le=1, description="additive Gaussian noise (configs_ebclr t.noise_std)")

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.source != "digits" and not self.path:
            raise ValueError(f"data.path is required when data.source is {self.source!r}")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError("data.crop_scale must satisfy 0 < low <= high <= 1")
        return self


class ModelConfig(StrictModel):
    width: int = Field(64, ge=2, le=128, description="ResNet-18 first-stage width (64 -> 512-d features)")
    proj_dim: int = Field(128, ge=2, le=1024, description="projection output (libs/net.py proj_dim 128)")


class EBCLRConfig(StrictModel):
    temperature: float = Field(0.1, gt=0, description="configs_ebclr temperature")
    lambda1: float = Field(0.001, ge=0, description="projection-norm penalty (lmda1)")
    lambda2: float = Field(0.1, ge=0, description="weight of the generative term (lmda2)")
    lr: float = Field(2e-4, gt=0, le=1, description="Adam, constant (optim.init_lr at batch 128); also the ablation's")
    lr_small_batch: float = Field(1e-4, gt=0, le=1, description="Adam at batch <= small_batch (mnist_b16.yaml)")
    small_batch: int = Field(16, ge=1)


class SGLDConfig(StrictModel):
    """The paper's SGLD variant (libs/utils.py ``MSGLD``) and replay buffer (libs/ebclr.py ``Buffer``)."""

    iters: int = Field(10, ge=1, le=1000, description="sgld.iter")
    step: float = Field(0.05, gt=0, description="sgld.lr: step on the clamped gradient")
    max_std: float = Field(0.05, ge=0, description="noise std of a freshly re-initialised sample")
    min_std: float = Field(0.01, ge=0, description="noise std after `threshold` refinements")
    threshold: float = Field(3.0, gt=0, description="refinements over which the noise decays")
    clamp: float = Field(1.0, gt=0, description="tau: gradient clamp")
    rho: float = Field(0.4, ge=0, le=1, description="re-initialised fraction (0.4 MNIST, 0.2 CIFAR)")
    buffer_size: int = Field(50_000, ge=1, le=1_000_000, description="buffer.size")
    init_count: float = Field(5.0, ge=0, description="refinement count of the initial buffer (Buffer.counter)")

    @model_validator(mode="after")
    def _stds(self) -> SGLDConfig:
        if self.min_std > self.max_std:
            raise ValueError("sgld.min_std must be <= sgld.max_std")
        return self


class SimCLRConfig(StrictModel):
    temperature: float = Field(0.1, gt=0, description="configs_simclr temperature")
    lr: float = Field(0.015, gt=0, le=10, description="SGD lr at batch 128, scaled linearly with the batch")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)


class MoCoConfig(StrictModel):
    temperature: float = Field(0.07, gt=0, description="configs_moco temperature")
    lr: float = Field(0.03, gt=0, le=10, description="SGD lr at batch 256, scaled linearly with the batch")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(1e-4, ge=0)
    queue_size: int = Field(65_536, ge=1, le=1_000_000, description="queue_size")
    key_momentum: float = Field(0.999, ge=0, lt=1, description="momentum-encoder EMA (momentum)")


class TrainConfig(StrictModel):
    methods: tuple[Method, ...] = Field(
        ("ebclr", "ebclr_lambda2_0", "simclr", "moco"),
        min_length=1,
        description="the first is served; ebclr must come first for the gate",
    )
    batch_sizes: tuple[int, ...] = Field((128, 16), min_length=1, description="the paper's batch-size study")
    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1, description="independent runs of every (method, batch)")
    epochs: int = Field(200, ge=1, le=10_000, description="epochs per run when train.steps is 0")
    steps: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="optimiser steps per run, the same for every method and "
        "batch size (matched steps); 0: epochs x steps per epoch of each batch size",
    )
    snapshots: int = Field(
        10,
        ge=1,
        le=1000,
        description="evaluated encoder snapshots per run, evenly spaced in steps (plus step 0, the random-init floor)",
    )
    max_steps_per_epoch: int = Field(0, ge=0, description="cap on steps per epoch (0: a full pass)")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="runs trained at once in worker processes on a CPU (each with cpu_threads threads); "
        "runs are independent, so the weights are the same as one after another (1: in this process)",
    )
    cpu_threads: int = Field(
        1,
        ge=0,
        le=256,
        description="torch intra-op threads on CPU (0: torch's default). These convs are tiny: on "
        "the shared 2-core box one thread ran the smoke pipeline in 0.9 s, two threads in 33 s (OpenMP waits)",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if any(b < 2 for b in self.batch_sizes):
            raise ValueError("train.batch_sizes must be >= 2 (contrastive losses need negatives)")
        if any(len(set(v)) != len(v) for v in (self.methods, self.batch_sizes, self.seeds)):
            raise ValueError("train.methods, train.batch_sizes and train.seeds must not repeat")
        return self


class EvalConfig(StrictModel):
    probe: Literal["lbfgs", "adam"] = Field("lbfgs", description="linear-probe optimiser on frozen features")
    probe_epochs: int = Field(100, ge=1, le=10_000, description="L-BFGS iterations or Adam epochs")
    probe_weight_decay: float = Field(1e-4, ge=0)
    knn_k: int = Field(20, ge=1, description="k-NN neighbours (K = 20)")
    knn_temperature: float = Field(0.07, gt=0, description="k-NN vote weight exp(sim / T)")


class EBCLRPaperConfig(PaperConfig):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    ebclr: EBCLRConfig = EBCLRConfig()
    sgld: SGLDConfig = SGLDConfig()
    simclr: SimCLRConfig = SimCLRConfig()
    moco: MoCoConfig = MoCoConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
