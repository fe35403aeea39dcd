"""A text-image model the project can use without downloads: open_clip's CLIP architecture trained
contrastively on drawings the project generates, or real CLIP weights from a local file; the
directional CLIP loss and prompt-template averaging (shared by DiffusionCLIP and CLIPstyler).

* ``model.py``: ``TextImageModel`` (open_clip CLIP + tokenizer + preprocessing), save / load,
  real weights from ``.safetensors`` / ``weights_only`` files.
* ``losses.py``: the CLIP contrastive loss, template averaging, the directional loss, zero-shot scores.
* ``train.py``: the block's ``build`` step (``paperops build-block clip``, DVC stage
  ``build-block@clip`` -> ``models/blocks/clip``): training and zero-shot evaluation on held-out
  caption combinations.
"""

from components.blocks.clip.config import ClipConfig
from components.blocks.clip.train import build
from components.contract import Block

BLOCK = Block(
    name="clip",
    title="Text-image model (open_clip CLIP architecture) trained on generated drawings",
    config=ClipConfig,
    build=build,
    # the smoke section of params.yaml: a ViT of one layer trained a few steps (chance-level, seconds)
    standalone={
        "data": {"train_images": 256, "eval_images": 32},
        "model": {
            "embed_dim": 32,
            "image_size": 32,
            "patch_size": 8,
            "vision_width": 32,
            "vision_layers": 1,
            "vision_head_width": 16,
            "text_width": 32,
            "text_heads": 2,
            "text_layers": 1,
            "context_length": 16,
        },
        "train": {"steps": 12, "batch_size": 32, "lr": 0.001, "warmup": 2, "checkpoint_every": 6, "log_every": 3},
    },
)
