"""FeSTA configuration. Defaults are the paper's own settings where it gives them (the `paper` scale).

Sources: Park et al., "Federated Split Task-Agnostic Learning for COVID-19 CXR Diagnosis Using
Vision Transformer", NeurIPS 2021 (arXiv 2111.01338): Sec. 3 and Algorithm 1 (clients' task
heads/tails, the server's shared transformer body, FedAvg of heads and tails within a task, a
final stage that fine-tunes the tails with the body fixed); Sec. 4 (ViT-B/16-sized body of 12
blocks, dim 768, 12 heads, 224x224 CXR, Adam). The paper's round counts and learning rate are not
public in code (there is no official repository); the nearest public code, faresmalik/FeSViBS
(SLViT.py), uses Adam at lr 1e-4, batch 32, 200 rounds and FedAvg every round: our paper-scale
defaults. Data sizes are ours: 32x32 synthetic CXR-like images at the default scale.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import PaperConfig, StrictModel

Task = Literal["cls", "sev", "seg"]


class DataConfig(StrictModel):
    source: Literal["synthetic", "folder"] = Field("synthetic", description="synthetic CXR-like images or data.path")
    path: str | None = Field(
        None, description="folder: <task>_<client>/ image folders with labels.csv (+ masks/), and test_<task>/"
    )
    size: int = Field(224, ge=16, le=512, description="image side (paper: 224)")
    clients_per_task: int = Field(2, ge=1, le=16, description="hospitals per task")
    train_per_client: int = Field(256, ge=4, le=100_000, description="synthetic training images per client")
    test_per_task: int = Field(256, ge=8, le=100_000, description="synthetic held-out images per task")
    dirichlet_alpha: float = Field(0.5, gt=0, le=100, description="label skew across clients (Dirichlet)")
    intensity_shift: float = Field(0.25, ge=0, le=1, description="per-hospital gamma/contrast/offset spread")


class ModelConfig(StrictModel):
    dim: int = Field(768, ge=8, le=2048, description="token width (ViT-B: 768)")
    depth: int = Field(12, ge=1, le=24, description="timm ViT blocks in the server body (ViT-B: 12)")
    num_heads: int = Field(12, ge=1, le=32)
    mlp_ratio: float = Field(4.0, gt=0, le=8)
    patch: int = Field(16, ge=2, le=64, description="the head CNN's total stride: tokens on a (size/patch)^2 grid")
    head_width: int = Field(32, ge=4, le=512, description="channels of the head CNN")


class TrainConfig(StrictModel):
    tasks: tuple[Task, ...] = Field(("cls", "sev", "seg"), min_length=1, description="the paper's three tasks")
    rounds: int = Field(200, ge=1, le=1_000_000, description="split-learning rounds (one batch per client each)")
    finetune_rounds: int = Field(50, ge=0, le=1_000_000, description="final stage: tails only, body frozen")
    batch_size: int = Field(32, ge=1, le=1024)
    lr: float = Field(1e-4, gt=0, le=1.0, description="Adam (FeSViBS: 1e-4)")
    finetune_lr: float = Field(1e-4, gt=0, le=1.0)
    fedavg_every: int = Field(
        1, ge=1, le=10_000, description="k: FedAvg of heads and tails within a task every k rounds"
    )
    checkpoint_every: int = Field(50, ge=1, description="rounds between checkpoints of the federated loop")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="a client silent this long is dropped")
    threads: int = Field(1, ge=1, le=64, description="torch threads per process (server and every client)")
    seg_dice_weight: float = Field(1.0, ge=0, le=10, description="segmentation loss = BCE + w * soft Dice")


Method = Literal["festa", "local", "fedavg", "central"]


class EvalConfig(StrictModel):
    seeds: int = Field(3, ge=2, le=50, description="paired seeds: every method trains once per seed")
    methods: tuple[Method, ...] = Field(
        ("festa", "local", "fedavg", "central"), min_length=2, description="FeSTA and the baselines it is compared with"
    )
    z: float = Field(2.0, gt=0, description="standard errors a gated difference must clear")
    bootstrap: int = Field(200, ge=20, le=10_000, description="test-set resamples for the SE of AUC and F1")
    gate_bytes: bool = Field(True, description="gate also: FeSTA's bytes per round below whole-model FedAvg's")

    @model_validator(mode="after")
    def _festa_and_local(self) -> EvalConfig:
        if "festa" not in self.methods or "local" not in self.methods:
            raise ValueError("eval.methods must hold festa and local (the gated comparison)")
        if self.gate_bytes and "fedavg" not in self.methods:
            raise ValueError("eval.gate_bytes needs fedavg in eval.methods")
        return self


class FeSTAConfig(PaperConfig):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _sizes(self) -> FeSTAConfig:
        p = self.model.patch
        if p & (p - 1) or self.data.size % p:
            raise ValueError(f"model.patch ({p}) must be a power of 2 dividing data.size ({self.data.size})")
        if self.model.dim % self.model.num_heads:
            raise ValueError("model.dim must be a multiple of model.num_heads")
        if self.data.source == "folder" and not self.data.path:
            raise ValueError("data.path is required when data.source is 'folder'")
        return self
