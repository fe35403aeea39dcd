"""CLIPstyler configuration. Defaults are the paper's and the official code's (the `paper` scale).

Sources: Kwon & Ye, "CLIPstyler: Image Style Transfer with a Single Text Condition", CVPR 2022
(arXiv 2112.00374), Sec. 3 and 4; official code cyclomon/CLIPstyler: ``train_CLIPstyler.py``
argument defaults (lambda_tv 2e-3, lambda_patch 9000, lambda_dir 500, lambda_c 150, crop_size 128,
num_crops 64, img 512x512, max_step 200, lr 5e-4, thresh 0.7; StepLR(100, 0.5); source "a Photo";
RandomPerspective(fill=0, p=1, distortion_scale=0.5); content loss on VGG19 conv4_2 + conv5_2),
``StyleNet.py`` (UNet ngf 16) and ``train_fast.py`` (the fast variant: lr 1e-4, lr_decay 5e-5,
max_iter 200, batch 4, content_weight 1, clip_weight 10, tv_weight 1e-4, glob_weight 1, 16
augmented views, thresh 0.7). The text-image model is the project's CLIP block (``USES_BLOCKS``);
real ViT-B/32 weights named in the block's section (``blocks: clip: source: pretrained``) are used
unchanged by the same code.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from components.config import PaperConfig, StrictModel


class DataConfig(StrictModel):
    source: Literal["skimage", "folder"] = Field("skimage", description="bundled photographs, or a local folder")
    path: str | None = Field(None, description="folder of content images (PNG/JPEG), source folder")
    size: int = Field(512, ge=16, le=1024, description="content side (img_width = img_height = 512)")
    eval_names: tuple[str, ...] = Field(
        ("immunohistochemistry", "retina", "colorwheel", "hubble_deep_field", "logo", "microaneurysms"),
        min_length=1,
        description="skimage photographs stylised and scored (none is in the CLIP block's training drawings)",
    )
    train_names: tuple[str, ...] = Field(
        ("clock", "cell", "horse", "checkerboard"),
        min_length=1,
        description="skimage images the fast variant trains its one network on (disjoint from eval_names)",
    )
    eval_images: int = Field(8, ge=1, le=10_000, description="folder source: images stylised (the rest train fast)")

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.source == "folder" and not self.path:
            raise ValueError("data.path is required when data.source is 'folder'")
        if self.size % 8:
            raise ValueError(f"data.size {self.size} must be a multiple of 8 (StyleNet's three stride-2 blocks)")
        if set(self.eval_names) & set(self.train_names):
            raise ValueError("data.eval_names and data.train_names must be disjoint")
        return self


class StyleConfig(StrictModel):
    """The per-image optimisation (train_CLIPstyler.py)."""

    ngf: int = Field(16, ge=2, le=128, description="StyleNet.UNet ngf")
    iterations: int = Field(200, ge=1, le=10_000, description="max_step")
    lr: float = Field(5e-4, gt=0, le=1.0)
    lr_step: int = Field(100, ge=1, description="StepLR step_size")
    lr_gamma: float = Field(0.5, gt=0, le=1.0, description="StepLR gamma")
    crop_size: int = Field(128, ge=4, le=1024, description="patch side (128 of 512: a quarter of the side)")
    num_crops: int = Field(64, ge=1, le=1024)
    thresh: float = Field(0.7, ge=0, le=2, description="threshold rejection tau")
    distortion: float = Field(0.5, ge=0, le=1, description="RandomPerspective distortion_scale")
    lambda_patch: float = Field(9000.0, ge=0)
    lambda_dir: float = Field(500.0, ge=0)
    lambda_c: float = Field(150.0, ge=0)
    lambda_tv: float = Field(2e-3, ge=0)
    source: str = Field("a Photo", min_length=1, max_length=80, description="source text t_src")


class FastConfig(StrictModel):
    """The fast variant (train_fast.py): one StyleNet for all contents, fine-tuned per text."""

    pretrain_steps: int = Field(2000, ge=0, le=1_000_000, description="reconstruction pre-training (the decoder)")
    pretrain_lr: float = Field(1e-3, gt=0, le=1.0)
    iterations: int = Field(200, ge=1, le=100_000, description="max_iter")
    batch_size: int = Field(4, ge=1, le=256)
    lr: float = Field(1e-4, gt=0, le=1.0)
    lr_decay: float = Field(5e-5, ge=0, description="lr / (1 + lr_decay * i)")
    views: int = Field(16, ge=1, le=256, description="augmented views of each output")
    content_weight: float = Field(1.0, ge=0)
    clip_weight: float = Field(10.0, ge=0)
    tv_weight: float = Field(1e-4, ge=0)
    glob_weight: float = Field(1.0, ge=0)


class ContentConfig(StrictModel):
    features: Literal["auto", "vgg", "clip"] = Field(
        "auto", description="vgg: VGG19 conv4_2/conv5_2 (needs vgg_path); clip: the CLIP block's ViT tokens; auto"
    )
    vgg_path: str | None = Field(None, description="local torchvision vgg19 state dict (.safetensors / .pth)")

    @model_validator(mode="after")
    def _vgg(self) -> ContentConfig:
        if self.features == "vgg" and not self.vgg_path:
            raise ValueError("content.vgg_path is required when content.features is 'vgg'")
        return self


class EvalConfig(StrictModel):
    texts: tuple[str, ...] = Field(
        ("red and blue stripes", "brick wall", "grass"),
        min_length=1,
        description="style texts (the paper's are free text; these are phrases the CLIP block was trained on)",
    )
    ablations: tuple[Literal["no_patch", "no_thresh", "no_aug"], ...] = Field(
        ("no_patch", "no_thresh", "no_aug"), description="the paper's ablations (Fig. 7)"
    )
    gated: tuple[Literal["no_patch", "no_thresh", "no_aug"], ...] = Field(
        ("no_patch",),
        description="ablations the gate requires the full loss to beat in patch-CLIP score (the rest are reported): "
        "at the CPU scale only the patch loss's gain holds (README)",
    )
    score_crops: int = Field(64, ge=1, le=1024, description="random patches of the patch-CLIP score")
    z: float = Field(2.0, gt=0, description="standard errors a gated difference must clear")
    edge_ssim_bound: float = Field(0.25, ge=-1, le=1, description="gate: the full loss's edge SSIM above")


class CLIPstylerConfig(PaperConfig):
    USES_BLOCKS: ClassVar[tuple[str, ...]] = ("clip",)

    variant: Literal["per_image", "fast"] = Field("per_image", description="train_CLIPstyler.py or train_fast.py")
    threads: int = Field(
        0,
        ge=0,
        le=256,
        description="torch CPU threads of the optimisations (0: torch's default). The default scale's nets are "
        "tiny: under `dvc repro` with two threads on a busy 2-core machine one optimisation took minutes "
        "(OpenMP waits), with one thread seconds",
    )
    data: DataConfig = DataConfig()
    style: StyleConfig = StyleConfig()
    fast: FastConfig = FastConfig()
    content: ContentConfig = ContentConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _consistent(self) -> CLIPstylerConfig:
        if not set(self.eval.gated) <= set(self.eval.ablations):
            raise ValueError(f"eval.gated {self.eval.gated} must be among eval.ablations {self.eval.ablations}")
        if self.style.crop_size > self.data.size:
            raise ValueError(f"style.crop_size {self.style.crop_size} exceeds data.size {self.data.size}")
        return self
