"""Configuration of the shared text-image block (``blocks: clip:`` in params.yaml).

Defaults are CLIP's (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision"): the ViT-B/32 shape (Table 20 of the paper: embed 512, vision width 768 x 12 layers, patch 32 at
224 px; text width 512 x 12 layers, 8 heads, context 77) and its optimisation (Sec. 2.5 and Table
19: AdamW with decoupled weight decay 0.2 on the weight matrices, beta2 0.98, eps 1e-6, cosine
schedule after warm-up, learnable temperature initialised to 0.07 and clipped so the logits are
scaled by at most 100). The data are ours: drawings the project generates
(``components/blocks/data/drawings.py``), so the ``paper`` scale is CLIP's ViT-B/32 recipe on them,
for a GPU; the default scale is a tiny ViT a CPU trains in about a minute.

``source: pretrained`` skips training and imports real CLIP weights from ``pretrained.path`` (a
local file; see ``model.load_pretrained``), which both CLIP papers then use unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.blocks.data.vocabulary import COLOURS, MOODS, SHAPES
from components.config import BlockConfig, StrictModel


class PretrainedConfig(StrictModel):
    path: str | None = Field(None, description="local .safetensors or torch.save state dict of a CLIP model")
    arch: str = Field("auto", description="'auto' (inferred from the weights) or an open_clip config name (ViT-B-32)")
    quick_gelu: bool = Field(True, description="OpenAI weights: true; open_clip LAION ViTs: false")


class ClipDataConfig(StrictModel):
    size: int = Field(32, ge=16, le=512, description="side of the generated drawings")
    train_images: int = Field(200_000, ge=16, le=5_000_000, description="image-caption pairs generated for training")
    eval_images: int = Field(600, ge=8, le=100_000, description="test images per zero-shot split")
    held_out: tuple[tuple[str, str], ...] = Field(
        (("red", "triangle"), ("green", "circle"), ("blue", "star"), ("yellow", "cross"), ("purple", "square")),
        description="(colour, shape) pairs never drawn in training: the zero-shot test of composition",
    )

    @model_validator(mode="after")
    def _pairs(self) -> ClipDataConfig:
        for colour, what in self.held_out:
            if colour not in COLOURS or what not in (*SHAPES, *MOODS):
                raise ValueError(
                    f"held_out pair ({colour}, {what}): colour must be one of {', '.join(COLOURS)} and the second a "
                    f"shape ({', '.join(SHAPES)}) or mood ({', '.join(MOODS)})"
                )
        return self


class ClipModelConfig(StrictModel):
    """open_clip's CLIPVisionCfg / CLIPTextCfg fields (ViT vision tower)."""

    embed_dim: int = Field(512, ge=8, le=4096)
    image_size: int = Field(224, ge=16, le=1024)
    patch_size: int = Field(32, ge=2, le=64)
    vision_width: int = Field(768, ge=16, le=4096)
    vision_layers: int = Field(12, ge=1, le=48)
    vision_head_width: int = Field(64, ge=8, le=256)
    text_width: int = Field(512, ge=16, le=4096)
    text_heads: int = Field(8, ge=1, le=64)
    text_layers: int = Field(12, ge=1, le=48)
    context_length: int = Field(77, ge=8, le=77, description="token positions (captions here need 14)")

    @model_validator(mode="after")
    def _shapes(self) -> ClipModelConfig:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        if self.vision_width % self.vision_head_width or self.text_width % self.text_heads:
            raise ValueError("vision_width / vision_head_width and text_width / text_heads must be whole numbers")
        return self


class ClipTrainConfig(StrictModel):
    steps: int = Field(30_000, ge=1, le=10_000_000)
    batch_size: int = Field(1024, ge=2, le=65_536, description="CLIP: 32768 (a batch of that size is the negatives)")
    lr: float = Field(5e-4, gt=0, le=1.0, description="ViT-B/32: 5e-4 (Table 20)")
    weight_decay: float = Field(0.2, ge=0, le=1.0)
    beta2: float = Field(0.98, gt=0, lt=1)
    eps: float = Field(1e-6, gt=0)
    warmup: int = Field(2000, ge=0, description="linear warm-up steps, then cosine to 0")
    init_temperature: float = Field(0.07, gt=0, le=1.0)
    max_logit_scale: float = Field(100.0, gt=1, le=1000, description="exp(t) is clipped at this")
    checkpoint_every: int = Field(1000, ge=1)
    log_every: int = Field(50, ge=1)


class ClipConfig(BlockConfig):
    source: Literal["train", "pretrained"] = Field("train", description="train the model here, or import weights")
    pretrained: PretrainedConfig = PretrainedConfig()
    data: ClipDataConfig = ClipDataConfig()
    model: ClipModelConfig = ClipModelConfig()
    train: ClipTrainConfig = ClipTrainConfig()

    @model_validator(mode="after")
    def _source(self) -> ClipConfig:
        if self.source == "pretrained" and not self.pretrained.path:
            raise ValueError("pretrained.path is required when source is 'pretrained'")
        return self
