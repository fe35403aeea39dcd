"""DiffusionCLIP configuration. Defaults are the paper's and the official code's (the `paper` scale).

Sources: Kim, Kwon & Ye, "DiffusionCLIP: Text-Guided Diffusion Models for Robust Image
Manipulation", CVPR 2022 (arXiv 2110.02711): the directional CLIP loss with L1 and identity
terms, deterministic DDIM inversion, fine-tuning of the score model, noise combination for
multi-attribute transfer and model_ratio. Official code gwang-kim/DiffusionCLIP: ``main.py`` argument defaults and the
README's fine-tuning command (t_0 500, n_inv_step 40, n_train_step 6, n_test_step 40, n_iter 5,
n_train_img 50, lr_clip_finetune 8e-6, clip_loss_w 3, l1_loss_w 1, id_loss_w 0, sch_gamma 1.3,
bs_train 1, eta 0); ``configs/celeba.yml`` (256x256, linear betas 1e-4..0.02 over 1000 steps,
UNet ch 128 x (1, 1, 2, 2, 4, 4), 2 res blocks, attention at 16, EMA 0.999); ``configs/paths_config.py``
``HYBRID_CONFIG`` ({300: [0.4, 0.6], 0: [0.15, 0.15, 0.7]}: ratios of the fine-tuned models above
and below a time threshold). The official code fine-tunes pretrained DDPMs; here the DDPM is trained
first with the shared diffusion blocks (Ho et al. 2020: lr 2e-5 at 256 px, EMA). The text-image
model is the project's trained CLIP block (``USES_BLOCKS``); with real CLIP weights named in the
block's section, the same code uses them.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from components.config import PaperConfig, StrictModel


class DataConfig(StrictModel):
    source: Literal["drawn", "folder"] = Field("drawn", description="generated faces, or a folder of images")
    path: str | None = Field(None, description="folder of PNG/JPEG face images (CelebA-HQ, FFHQ ...), source folder")
    size: int = Field(256, ge=8, le=1024, description="image side (CelebA-HQ DDPM: 256)")
    train_images: int = Field(30_000, ge=8, le=10_000_000, description="DDPM training images (drawn)")
    test_images: int = Field(64, ge=2, le=100_000, description="held-out test images")

    @model_validator(mode="after")
    def _path(self) -> DataConfig:
        if self.source == "folder" and not self.path:
            raise ValueError("data.path is required when data.source is 'folder'")
        return self


class ModelConfig(StrictModel):
    """The eps-network (diffusers UNet2DModel; celeba.yml: ch 128, ch_mult 1,1,2,2,4,4, 2 blocks)."""

    block_out_channels: tuple[int, ...] = Field((128, 128, 256, 256, 512, 512), min_length=1, max_length=7)
    layers_per_block: int = Field(2, ge=1, le=4)
    attention: bool = Field(True, description="self-attention at the lowest level")
    norm_num_groups: int = Field(32, ge=1, le=64)


class DiffusionConfig(StrictModel):
    num_train_timesteps: int = Field(1000, ge=10, le=4000)
    beta_start: float = Field(1e-4, gt=0, lt=1)
    beta_end: float = Field(0.02, gt=0, lt=1)


class TrainConfig(StrictModel):
    """The DDPM the manipulation starts from (the official code downloads one; we train it)."""

    steps: int = Field(500_000, ge=1, le=10_000_000)
    batch_size: int = Field(64, ge=1, le=4096)
    lr: float = Field(2e-5, gt=0, le=1.0, description="Ho et al. 2020 at 256 px")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="celeba.yml ema_rate")
    grad_clip: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(5000, ge=1)
    log_every: int = Field(100, ge=1)


class Target(StrictModel):
    """One text-driven edit: the reference text, the target text, how the edit is scored."""

    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]{0,31}$", description="model name (URL- and file-safe)")
    source: str = Field(..., min_length=1, max_length=80, description="reference text t_ref (text_dic.py: 'face')")
    target: str = Field(..., min_length=1, max_length=80, description="target text t_tgt ('smiling face')")
    classes: tuple[str, ...] = Field(
        ..., min_length=2, description="zero-shot classes the edit is scored among (the target text among them)"
    )
    attribute: str = Field(
        "", pattern=r"^([a-z]+:[a-z]+)?$", description="'mood:smiling': the drawn attribute it sets (independent check)"
    )

    @model_validator(mode="after")
    def _target_scored(self) -> Target:
        if self.target not in self.classes:
            raise ValueError(f"target {self.target!r} must be one of its classes {self.classes}")
        return self


class FinetuneConfig(StrictModel):
    """CLIP-guided fine-tuning (official clip_finetune; README command)."""

    targets: tuple[Target, ...] = Field(
        (
            Target(
                name="smiling",
                source="face",
                target="smiling face",
                classes=("smiling face", "frowning face"),
                attribute="mood:smiling",
            ),
            Target(
                name="blue",
                source="face",
                target="blue face",
                classes=tuple(f"{c} face" for c in ("red", "orange", "yellow", "green", "blue", "purple", "pink")),
                attribute="colour:blue",
            ),
        ),
        min_length=1,
        description="text_dic.py pairs, e.g. smiling: (['face'], ['smiling face'])",
    )
    t0: int = Field(500, ge=1, le=999, description="return step t_0 (README: 500; the paper uses 300..600)")
    n_inv: int = Field(40, ge=1, le=1000, description="n_inv_step: DDIM steps of the inversion")
    n_train: int = Field(6, ge=1, le=1000, description="n_train_step: DDIM steps of the generation while fine-tuning")
    n_gen: int = Field(40, ge=1, le=1000, description="n_test_step: DDIM steps of the generation at test")
    images: int = Field(50, ge=1, le=100_000, description="n_train_img: precomputed latents fine-tuned on")
    iterations: int = Field(5, ge=1, le=1000, description="n_iter: passes over the latents")
    batch_size: int = Field(1, ge=1, le=1024, description="bs_train")
    lr: float = Field(8e-6, gt=0, le=1.0, description="lr_clip_finetune (README 8e-6; main.py default 2e-6)")
    lr_gamma: float = Field(1.3, gt=0, le=10, description="sch_gamma: StepLR factor after every pass")
    clip_weight: float = Field(3.0, ge=0, description="clip_loss_w")
    l1_weight: float = Field(1.0, ge=0, description="l1_loss_w (README command; main.py default 0)")
    mode: Literal["full", "eff"] = Field(
        "full",
        description="full: loss on x_0 after the whole generation (clip_finetune); eff: a loss and an "
        "Adam step at every generation step on the predicted x_0 (clip_finetune_eff, less memory)",
    )


class EvalConfig(StrictModel):
    fidelity_images: int = Field(64, ge=2, le=100_000, description="test images of the inversion fidelity grid")
    t0s: tuple[int, ...] = Field((100, 300, 500), min_length=1, description="inversion fidelity grid: t_0")
    n_invs: tuple[int, ...] = Field((10, 20, 40), min_length=1, description="inversion fidelity grid: n_inv")
    ratios: tuple[float, ...] = Field((0.0, 0.25, 0.5, 0.75, 1.0), min_length=2, description="model_ratio sweep")
    mix: tuple[tuple[int, tuple[float, ...]], ...] = Field(
        ((300, (0.4, 0.6)), (0, (0.15, 0.85))),
        description="noise combination of the fine-tuned models (targets in order) by time threshold, "
        "HYBRID_CONFIG's form: (threshold, ratios), thresholds descending; the first with t >= threshold applies",
    )
    mix_alphas: tuple[float, ...] = Field(
        (0.0, 0.25, 0.5, 0.75, 1.0), min_length=2, description="ratio sweep of the first target against the second"
    )
    recon_mae_bound: float = Field(0.03, gt=0, le=1, description="gate: DDIM reconstruction MAE (on [0, 1]) below")
    drift_bound: float = Field(0.12, gt=0, le=1, description="gate: manipulation L1 drift (mean |x - x_in|) below")
    z: float = Field(2.0, gt=0, description="standard errors a gated difference must clear")
    classifier_steps: int = Field(300, ge=0, le=100_000, description="independent attribute classifier (drawn data)")


class DiffusionCLIPConfig(PaperConfig):
    USES_BLOCKS: ClassVar[tuple[str, ...]] = ("clip",)

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    train: TrainConfig = TrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _consistent(self) -> DiffusionCLIPConfig:
        mult = 2 ** (len(self.model.block_out_channels) - 1)
        if self.data.size % mult:
            raise ValueError(f"data.size {self.data.size} must be a multiple of {mult} (the U-Net's poolings)")
        t_max = self.diffusion.num_train_timesteps - 1
        for t0 in (self.finetune.t0, *self.eval.t0s):
            if t0 > t_max:
                raise ValueError(f"t0 {t0} must be below num_train_timesteps ({t_max + 1})")
        names = [t.name for t in self.finetune.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"finetune.targets names must be unique (got {names})")
        if self.finetune.images < self.finetune.batch_size:
            raise ValueError("finetune.images must be at least finetune.batch_size")
        thresholds = [thr for thr, _ in self.eval.mix]
        if thresholds != sorted(thresholds, reverse=True) or (thresholds and thresholds[-1] != 0):
            raise ValueError("eval.mix thresholds must descend and end at 0 (every step needs its ratios)")
        for _, ratios in self.eval.mix:
            if len(ratios) > len(self.finetune.targets) or sum(ratios) <= 0 or min(ratios) < 0:
                raise ValueError("eval.mix ratios: one per fine-tuned target (at most), each >= 0, sum > 0")
        return self
