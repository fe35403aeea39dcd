"""CCDF configuration. Defaults are the paper's own settings (the `paper` scale).

Sources: Chung, Sim & Ye, "Come-Closer-Diffuse-Faster", CVPR 2022 (arXiv 2112.05146), Sec. 3
(Algorithm 1, N' = t0 N), Sec. 4 (x4 super-resolution with ILVR-style low-pass consistency,
inpainting with mask replacement, CS-MRI at x4 acceleration; t0 = 0.2 with N = 100 discretisation
steps, i.e. N' = 20 reverse steps); the score models are ADM/DDPM networks with the linear beta
schedule 1e-4 -> 0.02 over T = 1000 (Ho et al. 2020), trained with lr 1e-4 and EMA 0.9999
(the guided-diffusion defaults). The paper names an official repository, but no public snapshot of
it was available to this port, so nothing here is taken from it; the related public code of the
same group that exists is HJ-harry/score-MRI (score-POCS CS-MRI) and, for ILVR's low-pass
consistency, jychoi118/ilvr_adm. Data sizes are ours: the paper trains 256x256 networks on
FFHQ/AFHQ/fastMRI; the default scale trains on 32x32 patches and evaluates on 64x64 images.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import PaperConfig, StrictModel

Task = Literal["sr", "inpaint", "mri"]
Init = Literal["simple", "tv", "network"]


class DataConfig(StrictModel):
    source: Literal["skimage", "folder"] = Field(
        "skimage", description="photographs: skimage's bundled set or data.path"
    )
    path: str | None = Field(None, description="folder of PNG/JPEG images (FFHQ, AFHQ, DIV2K ...)")
    test_photos: tuple[str, ...] = Field(
        ("astronaut", "coffee", "camera", "gravel"),
        min_length=1,
        description="held-out photographs (never trained on): portrait, objects, scene, texture",
    )
    val_photos: tuple[str, ...] = Field(
        ("chelsea",), min_length=1, description="validation photographs (TV lambda, CCDF init and t0)"
    )
    mri_source: Literal["nifti", "phantom", "npy"] = Field(
        "nifti", description="a real NIfTI volume (default: nibabel's bundled EPI brain), phantoms, or .npy slices"
    )
    mri_path: str | None = Field(
        None, description="NIfTI file (nifti; default nibabel's example4d.nii.gz) or folder of .npy slices (npy)"
    )
    mri_train_slices: tuple[int, int] = Field((0, 12), description="inclusive axial slice range the prior trains on")
    mri_val_slices: tuple[int, int] = Field((15, 16), description="validation slices (TV lambda, CCDF init and t0)")
    mri_test_slices: tuple[int, int] = Field(
        (18, 23), description="held-out test slices, >= 13 mm from any training slice"
    )
    size: int = Field(256, ge=16, le=1024, description="evaluation image side (paper: 256)")
    train_size: int = Field(
        256, ge=8, le=1024, description="training patch side (the conv net applies to larger images)"
    )
    eval_images: int = Field(3, ge=1, le=1000, description="held-out .npy files (mri_source npy)")
    patches_per_image: int = Field(512, ge=1, le=100_000, description="patches per training image (and per scale)")
    train_phantoms: int = Field(0, ge=0, le=1_000_000, description="MR phantoms added to the training set")
    eval_count: int = Field(16, ge=1, le=10_000, description="at most this many test images per task")

    @model_validator(mode="after")
    def _paths(self) -> DataConfig:
        if self.source == "folder" and not self.path:
            raise ValueError("data.path is required when data.source is 'folder'")
        if self.mri_source == "npy" and not self.mri_path:
            raise ValueError("data.mri_path is required when data.mri_source is 'npy'")
        return self


class TaskConfig(StrictModel):
    """The three inverse problems of the paper's Sec. 4."""

    sr_factor: int = Field(4, ge=2, le=8, description="super-resolution x4 (paper Sec. 4.1)")
    box_fraction: float = Field(0.5, gt=0, lt=1, description="inpainting: missing square of this side fraction")
    acceleration: float = Field(4.0, ge=1, le=16, description="CS-MRI acceleration x4 (paper Sec. 4.3)")
    center_fraction: float = Field(0.08, gt=0, lt=1, description="fully sampled k-space centre (fastMRI x4: 0.08)")
    mri_mask: Literal["cartesian", "variable_density"] = Field("cartesian")
    tv_lambda: float = Field(
        0.01, gt=0, description="TV weight of the served `tv` init (evaluation tunes its own on validation)"
    )
    tv_iters: int = Field(300, ge=1, le=10_000, description="Chambolle-Pock iterations of the served `tv` init")


class ModelConfig(StrictModel):
    """The eps-network (diffusers UNet2DModel) and the feed-forward initialiser (N2N U-Net)."""

    block_out_channels: tuple[int, ...] = Field(
        (128, 256, 256, 256),
        min_length=1,
        max_length=6,
        description="UNet2DModel widths (DDPM 256x256: 128, 256, 256, 256 ...)",
    )
    layers_per_block: int = Field(2, ge=1, le=4, description="DDPM: 2 residual blocks per level")
    attention: bool = Field(True, description="self-attention at the lowest level (DDPM: at 16x16)")
    norm_num_groups: int = Field(32, ge=1, le=64)
    init_width: int = Field(48, ge=4, le=256, description="feed-forward initialiser U-Net width")
    init_depth: int = Field(4, ge=1, le=6, description="feed-forward initialiser U-Net poolings")


class TrainConfig(StrictModel):
    steps: int = Field(500_000, ge=1, le=10_000_000, description="score-model steps")
    init_steps: int = Field(100_000, ge=0, le=10_000_000, description="steps per feed-forward initialiser (0: none)")
    batch_size: int = Field(8, ge=1, le=1024)
    lr: float = Field(1e-4, gt=0, le=1.0, description="Adam lr (guided-diffusion: 1e-4)")
    init_lr: float = Field(1e-4, gt=0, le=1.0)
    ema_decay: float = Field(0.9999, ge=0, lt=1, description="EMA of the score model (guided-diffusion: 0.9999)")
    grad_clip: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(5000, ge=1)
    log_every: int = Field(100, ge=1)


class SamplingConfig(StrictModel):
    """Algorithm 1: N discretisation steps of [0, 1]; CCDF runs the last N' = t0 N of them."""

    num_train_timesteps: int = Field(1000, ge=10, le=4000, description="T (Ho et al. 2020)")
    beta_start: float = Field(1e-4, gt=0, lt=1)
    beta_end: float = Field(0.02, gt=0, lt=1)
    steps: int = Field(
        100, ge=1, le=1000, description="N: discretisation of the reverse SDE (paper: t0 0.2 -> N' = 20)"
    )
    t0: float = Field(0.2, gt=0, le=1, description="the paper's t0 (Sec. 4: 0.2)")
    full_steps: int = Field(1000, ge=1, le=4000, description="the from-noise reference: N = 1000")


class EvalConfig(StrictModel):
    """What is measured, and the gate. CCDF's init and t0 are chosen on the validation images,
    never on the test images; so is the TV weight of the classical baseline."""

    tasks: tuple[Task, ...] = Field(("sr", "inpaint", "mri"), min_length=1)
    mri_accelerations: tuple[float, ...] = Field(
        (4.0, 8.0), min_length=1, description="CS-MRI at these accelerations (tasks mri_x4, mri_x8)"
    )
    t0s: tuple[float, ...] = Field(
        (0.05, 0.1, 0.2), min_length=1, description="t0 candidates (validation) and the PSNR-vs-t0 table"
    )
    inits: tuple[Init, ...] = Field(
        ("simple", "tv", "network"), min_length=1, description="x0_hat candidates (validation)"
    )
    full_tasks: tuple[Task, ...] = Field(
        ("sr", "inpaint", "mri"), description="tasks with the 1000-step-from-noise reference (its cost)"
    )
    full_count: int = Field(16, ge=2, le=10_000, description="test images of the 1000-step reference")
    tv_lambdas: tuple[float, ...] = Field(
        (0.003, 0.01, 0.03, 0.1), min_length=1, description="TV weights tried on validation"
    )
    tv_iters: int = Field(300, ge=1, le=100_000, description="Chambolle-Pock iterations of TV-CS")
    noninferiority_db: float = Field(
        0.5, ge=0, description="'matches': CCDF - 1000 steps > -this, at z standard errors"
    )
    z: float = Field(2.0, gt=0, description="standard errors a gated difference must clear")
    gate_full: tuple[str, ...] = Field(
        ("sr", "inpaint", "mri_x4", "mri_x8"), description="tasks where 'matches 1000 steps from noise' is gated"
    )
    gate_psnr_over: tuple[str, ...] = Field(
        ("sr:bicubic", "inpaint:tv", "mri_x4:tv", "mri_x8:tv"),
        description="'task:baseline' pairs where CCDF must beat the classical baseline in PSNR",
    )
    gate_swd_under: tuple[str, ...] = Field(
        (), description="'task:baseline' pairs where CCDF's patch SWD must be below the baseline's"
    )
    max_gate_steps: int = Field(20, ge=1, description="gate: N' of CCDF at most this (paper: 20)")


class CCDFConfig(PaperConfig):
    data: DataConfig = DataConfig()
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    sampling: SamplingConfig = SamplingConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _sizes(self) -> CCDFConfig:
        mult = 2 ** (len(self.model.block_out_channels) - 1)
        for side in (self.data.size, self.data.train_size):
            if side % mult or side % self.task.sr_factor or side % 2**self.model.init_depth:
                raise ValueError(
                    f"data.size and data.train_size ({side}) must be multiples of {mult},"
                    " of task.sr_factor and of 2**init_depth"
                )
        if self.data.train_size > self.data.size:
            raise ValueError("data.train_size must not exceed data.size")
        return self
