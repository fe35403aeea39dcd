"""The text-image model: open_clip's ``CLIP`` built from its config classes, with its tokenizer and
image preprocessing, saved and loaded without pickle; real CLIP weights from a local file.

Two ways to get one, used unchanged by the same losses (``losses.py``):

* ``build_clip(arch)``: a CLIP of any size from a plain-dict architecture
  ``{"embed_dim", "vision": CLIPVisionCfg fields, "text": CLIPTextCfg fields, "quick_gelu"}``; the
  project trains a tiny one (``train.py``).
* ``load_pretrained(path, arch)``: OpenAI's or open_clip's weights (ViT-B/32, ViT-B/16, RN50 ...) as
  a state dict in a local ``.safetensors`` file or a ``torch.save`` file read with
  ``weights_only=True``. The architecture is inferred from the weights (``arch="auto"``, as
  open_clip's ``build_model_from_openai_state_dict`` does) or named after one of the model configs
  open_clip's wheel bundles (``"ViT-B-32"``). Nothing is ever downloaded: no pretrained tags, no
  Hugging Face tokenizer; the tokenizer is open_clip's ``SimpleTokenizer`` whose BPE vocabulary ships
  in the wheel. OpenAI's TorchScript ``.pt`` archives are refused (their loading runs code): convert
  them once with ``torch.jit.load(p, map_location="cpu").state_dict()`` and ``safetensors``.

Images enter as float ``(B, 3, H, W)`` in [0, 1], at any size: ``encode_image`` resizes them to the
model's input side (bilinear, antialiased when shrinking; differentiable) and normalises with CLIP's
mean and std (OpenAI's constants, used by the tiny model too), so the same call serves a 32x32
drawing and a 224x224 photograph. Features come out L2-normalised, ``(B, embed_dim)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip.constants.OPENAI_DATASET_MEAN
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
TEXT_FIELDS = ("context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio")
VISION_FIELDS = ("layers", "width", "head_width", "mlp_ratio", "patch_size", "image_size")


def _clip_classes() -> tuple[Any, Any, Any]:
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    return CLIP, CLIPVisionCfg, CLIPTextCfg


def build_clip(arch: dict[str, Any]) -> nn.Module:
    """An ``open_clip.model.CLIP`` from a plain-dict architecture (randomly initialised, float32).

    ``arch["vision"]["layers"]`` an int builds a ViT, a list of four ints open_clip's ModifiedResNet.
    """
    CLIP, CLIPVisionCfg, CLIPTextCfg = _clip_classes()
    vision = dict(arch["vision"])
    if isinstance(vision.get("layers"), list):
        vision["layers"] = tuple(vision["layers"])
    return CLIP(
        int(arch["embed_dim"]),
        vision_cfg=CLIPVisionCfg(**vision),
        text_cfg=CLIPTextCfg(**arch["text"]),
        quick_gelu=bool(arch.get("quick_gelu", False)),
    )


class TextImageModel(nn.Module):
    """open_clip's CLIP with its tokenizer and preprocessing: the one interface both CLIP papers use.

    Attributes:
        clip: the ``open_clip.model.CLIP``.
        arch: the plain-dict architecture (saved with the weights).
        image_size: the vision tower's input side.
    """

    clip: Any  # open_clip.model.CLIP (untyped package)
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        clip: nn.Module,
        arch: dict[str, Any],
        mean: Sequence[float] = OPENAI_MEAN,
        std: Sequence[float] = OPENAI_STD,
    ) -> None:
        super().__init__()
        from open_clip.tokenizer import SimpleTokenizer  # BPE vocabulary from the wheel, no download

        self.clip = clip
        self.arch = arch
        size = arch["vision"]["image_size"]
        self.image_size = int(size[0] if isinstance(size, list | tuple) else size)
        self.context_length = int(arch["text"]["context_length"])
        self.tokenizer = SimpleTokenizer(context_length=self.context_length)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def log_scale(self) -> nn.Parameter:
        """t, the learnt log inverse temperature (open_clip's ``logit_scale`` parameter)."""
        param = self.clip.logit_scale
        assert isinstance(param, nn.Parameter)
        return param

    @property
    def logit_scale(self) -> torch.Tensor:
        """exp(t): the learnt inverse temperature of the contrastive logits (a scalar tensor)."""
        return self.log_scale.exp()

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """``(N, context_length)`` token ids (longer texts are truncated, keeping the end token)."""
        return self.tokenizer(list(texts)).to(self.mean.device)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> resized to ``image_size`` and normalised (differentiable)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        if images.shape[-2:] != (self.image_size, self.image_size):
            shrink = max(images.shape[-2:]) > self.image_size
            images = F.interpolate(
                images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=shrink
            )
        return (images - self.mean) / self.std

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """E_I: ``(B, 3, H, W)`` in [0, 1] -> L2-normalised ``(B, D)``."""
        return F.normalize(self.clip.encode_image(self.preprocess(images)).float(), dim=-1)

    def encode_text(self, texts: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """E_T: texts (or token ids) -> L2-normalised ``(N, D)``."""
        tokens = texts if isinstance(texts, torch.Tensor) else self.tokenize(texts)
        return F.normalize(self.clip.encode_text(tokens).float(), dim=-1)

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}


WEIGHTS, CONFIG = "model.safetensors", "config.json"


def save_model(model: TextImageModel, directory: Path, extra: dict[str, Any] | None = None) -> Path:
    """``model.safetensors`` + ``config.json`` (architecture, normalisation, ``extra``), atomically."""
    from components.checkpoint import export_model

    return export_model(Path(directory), model.clip.state_dict(), {**model.config(), **(extra or {})})


def load_model(directory: Path, device: torch.device | str = "cpu") -> TextImageModel:
    """Rebuild a saved model (safetensors, no pickle) in eval mode with gradients off.

    Raises:
        FileNotFoundError: when the folder holds no saved model (it names the command that builds one).
    """
    from components.checkpoint import load_export

    try:
        config, state = load_export(Path(directory))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc}; build it with `paperops build-block clip`") from None
    model = TextImageModel(build_clip(config["arch"]), config["arch"], config["mean"], config["std"])
    model.clip.load_state_dict(state)
    return freeze(model.to(device))


def freeze(model: TextImageModel) -> TextImageModel:
    """Eval mode, no parameter gradients: the losses differentiate through the images only."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ----------------------------------------------------------------------------------- real CLIP weights
def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A CLIP state dict from ``.safetensors`` or a ``torch.save`` file (``weights_only=True``).

    Accepts a bare state dict or one under ``"state_dict"``, with or without a ``module.`` prefix.

    Raises:
        FileNotFoundError: no such file. ValueError: a TorchScript archive or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP weights {path} not found (name a local file in params.yaml)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        import zipfile

        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                if any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist()):
                    raise ValueError(
                        f"{path} is a TorchScript archive (OpenAI's clip .pt); loading it runs code. Convert it "
                        "once: safetensors.torch.save_file(torch.jit.load(p, map_location='cpu').state_dict(), "
                        "'clip.safetensors')"
                    )
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def infer_arch(state: dict[str, torch.Tensor], quick_gelu: bool = True) -> dict[str, Any]:
    """The architecture of an OpenAI-layout CLIP state dict (open_clip's CLIP uses the same keys).

    Follows open_clip's ``build_model_from_openai_state_dict``: ViT when ``visual.proj`` exists, else
    ModifiedResNet; widths, depths, patch and image size from tensor shapes; heads = width / 64.
    """
    if "visual.proj" in state:
        width = state["visual.conv1.weight"].shape[0]
        layers = len([k for k in state if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")])
        patch = state["visual.conv1.weight"].shape[-1]
        grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        vision: dict[str, Any] = {"layers": layers, "width": width, "patch_size": patch, "image_size": patch * grid}
    elif "visual.attnpool.positional_embedding" in state:
        counts = [len({k.split(".")[2] for k in state if k.startswith(f"visual.layer{b}.")}) for b in (1, 2, 3, 4)]
        width = state["visual.layer1.0.conv1.weight"].shape[0]
        out = round((state["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        vision = {"layers": counts, "width": width, "image_size": out * 32}
    else:
        raise ValueError("not a CLIP state dict: neither visual.proj (ViT) nor visual.attnpool (ResNet) found")
    t_width = state["ln_final.weight"].shape[0]
    text = {
        "context_length": state["positional_embedding"].shape[0],
        "vocab_size": state["token_embedding.weight"].shape[0],
        "width": t_width,
        "heads": max(1, t_width // 64),
        "layers": len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")}),
    }
    return {"embed_dim": state["text_projection"].shape[1], "vision": vision, "text": text, "quick_gelu": quick_gelu}


def named_arch(name: str, quick_gelu: bool) -> dict[str, Any]:
    """The architecture of a model config bundled in open_clip's wheel (``ViT-B-32``, ``RN50`` ...).

    Raises:
        ValueError: for a name open_clip does not bundle, or a config that needs a download (a
            Hugging Face text tower or tokenizer, a timm backbone).
    """
    import open_clip

    if name not in open_clip.list_models():
        raise ValueError(f"{name!r} is not a model config bundled with open_clip (e.g. ViT-B-32, ViT-B-16, RN50)")
    cfg = open_clip.get_model_config(name)
    vision, text = dict(cfg["vision_cfg"]), dict(cfg["text_cfg"])
    if text.get("hf_model_name") or text.get("hf_tokenizer_name") or vision.get("timm_model_name"):
        raise ValueError(f"{name} needs a Hugging Face or timm download; only self-contained configs are supported")
    return {
        "embed_dim": cfg["embed_dim"],
        "vision": vision,
        "text": text,
        "quick_gelu": bool(cfg.get("quick_gelu", quick_gelu)),
    }


def load_pretrained(path: Path, arch: str = "auto", quick_gelu: bool = True) -> TextImageModel:
    """Real CLIP weights from a local file, as a frozen ``TextImageModel`` in float32.

    Args:
        path: ``.safetensors`` or ``torch.save`` state dict (OpenAI / open_clip key layout).
        arch: ``"auto"`` (inferred from the weights) or an open_clip model config name.
        quick_gelu: OpenAI's weights were trained with QuickGELU (True); open_clip's LAION ViTs
            without (False). Only used with ``arch="auto"`` or a config that does not say.
    """
    state = read_state_dict(Path(path))
    for key in ("input_resolution", "context_length", "vocab_size"):  # entries of OpenAI's own files
        state.pop(key, None)
    spec = infer_arch(state, quick_gelu) if arch == "auto" else named_arch(arch, quick_gelu)
    model = TextImageModel(build_clip(spec), spec)
    missing, unexpected = model.clip.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    missing = [k for k in missing if k != "attn_mask"]
    if missing or unexpected:
        raise ValueError(f"{path} does not fit architecture {arch}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return freeze(model)
