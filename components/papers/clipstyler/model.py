"""StyleNet (the official ``StyleNet.py`` U-Net) and the content-feature networks.

StyleNet (cyclomon/CLIPstyler ``StyleNet.py``, class ``UNet``; Kwon & Ye 2022, Sec. 3.1 and
supplementary Fig. S1): a 1x1 input convolution to ``ngf`` channels (16), an encoding block, three
down blocks (each conv3x3-IN-ReLU twice plus a residual 1x1 convolution, then a 4x4 stride-2
convolution), an encoding block to 8 ngf, three up blocks (bilinear x2 upsampling, concatenation with
the skip features, conv3x3-IN-ReLU twice plus a residual 1x1), an output block on the concatenation
with the first features, a 1x1 convolution to RGB and a sigmoid.

Content features (train_CLIPstyler.py ``utils.get_features``): VGG19 ``conv4_2`` and ``conv5_2``
(torchvision's ``vgg19().features`` indices 21 and 31, ImageNet normalisation) when the user has VGG19
weights in a local file; otherwise the substitute this project uses without downloads: the token
features of the last two transformer blocks of the CLIP block's image encoder, run on native-resolution
tiles of the image (so a patch token sees 8x8 pixels of a 64x64 image with the default block).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from components.blocks.clip.model import TextImageModel

M = TypeVar("M", bound=nn.Module)


def _conv_in_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1),
        nn.InstanceNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, 1, 1),
        nn.InstanceNorm2d(cout),
        nn.ReLU(),
    )


class EncodingBlock(nn.Module):
    """conv-IN-ReLU x2 plus a residual 1x1 convolution (StyleNet.py ``EncodingBlock``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _conv_in_relu(cin, cout)
        self.skip = nn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.skip(x)


class DownBlock(EncodingBlock):
    """An encoding block then a 4x4 stride-2 convolution; returns (down, skip features)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout)
        self.downsample = nn.Conv2d(cout, cout, 4, 2, 1)

    def forward_pair(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = super().forward(x)
        return self.downsample(feat), feat


class UpBlock(nn.Module):
    """Bilinear x2, concatenation with the skip, conv-IN-ReLU x2 plus residual 1x1 (``UpBlock``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _conv_in_relu(cin + cout, cout)
        self.skip = nn.Conv2d(cin + cout, cout, 1, 1, 0)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # nn.Upsample(scale_factor=2, mode='bilinear') in the official code: align_corners=False
        h = torch.cat([F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False), skip], dim=1)
        return self.conv(h) + self.skip(h)


class StyleNet(nn.Module):
    """The official ``UNet(ngf=16)``: ``(B, 3, H, W)`` in [0, 1], H and W multiples of 8 -> same shape in (0, 1)."""

    def __init__(self, ngf: int = 16) -> None:
        super().__init__()
        self.conv_init = nn.Conv2d(3, ngf, 1, 1, 0)
        self.init = EncodingBlock(ngf, ngf)
        self.down1 = DownBlock(ngf, ngf)
        self.down2 = DownBlock(ngf, 2 * ngf)
        self.down3 = DownBlock(2 * ngf, 4 * ngf)
        self.encoding = EncodingBlock(4 * ngf, 8 * ngf)
        self.up3 = UpBlock(8 * ngf, 4 * ngf)
        self.up2 = UpBlock(4 * ngf, 2 * ngf)
        self.up1 = UpBlock(2 * ngf, ngf)
        self.out = EncodingBlock(2 * ngf, ngf)
        self.conv_fin = nn.Conv2d(ngf, 3, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"StyleNet takes (B, 3, H, W) with H, W multiples of 8, got {tuple(x.shape)}")
        x = self.init(self.conv_init(x))
        d1, f1 = self.down1.forward_pair(x)
        d2, f2 = self.down2.forward_pair(d1)
        d3, f3 = self.down3.forward_pair(d2)
        h = self.up1(self.up2(self.up3(self.encoding(d3), f3), f2), f1)
        return torch.sigmoid(self.conv_fin(self.out(torch.cat([h, x], dim=1))))


# ------------------------------------------------------------------------------ content features
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG_LAYERS = {21: "conv4_2", 31: "conv5_2"}  # utils.get_features: '21': conv4_2, '31': conv5_2


class VGGContent(nn.Module):
    """torchvision's ``vgg19().features`` up to conv5_2, weights from a local file (no download)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in VGG_LAYERS:
                out.append(h)
        return out


def vgg_features_module() -> nn.Sequential:
    from torchvision.models import vgg19

    return nn.Sequential(*list(vgg19(weights=None).features.children())[: max(VGG_LAYERS) + 1])


def load_vgg(path: Path) -> VGGContent:
    """VGG19 features from a ``.safetensors`` or ``torch.save`` state dict (``weights_only=True``).

    Accepts the full torchvision ``vgg19`` state dict (``features.N.weight`` ...) or its ``features``
    part (``N.weight``); the layers past conv5_2 are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG19 weights {path} not found (name a local file in params.yaml)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    feats = vgg_features_module()
    wanted = set(feats.state_dict())
    own = {k.removeprefix("features."): v for k, v in state.items()}
    own = {k: v for k, v in own.items() if k in wanted}
    missing = wanted - set(own)
    if missing:
        raise ValueError(f"{path} is not a torchvision VGG19 state dict (missing {sorted(missing)[:4]})")
    feats.load_state_dict(own)
    return freeze_module(VGGContent(feats))


class ClipContent(nn.Module):
    """The substitute content features: token features after the last two transformer blocks of the
    CLIP block's ViT, on non-overlapping native-resolution tiles of the image (the image is resized to
    the nearest multiple of the ViT's input side, at least one tile)."""

    def __init__(self, clip: TextImageModel, layers: int = 2) -> None:
        super().__init__()
        self.clip = clip
        self.layers = layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        side = self.clip.image_size
        b, _, h, w = x.shape
        th, tw = max(1, round(h / side)), max(1, round(w / side))
        if (h, w) != (th * side, tw * side):
            x = F.interpolate(x, size=(th * side, tw * side), mode="bilinear", align_corners=False)
        tiles = x.unfold(2, side, side).unfold(3, side, side)  # (B, 3, th, tw, side, side)
        tiles = tiles.permute(0, 2, 3, 1, 4, 5).reshape(b * th * tw, 3, side, side)
        visual = self.clip.clip.visual
        tokens = visual._embeds((tiles - self.clip.mean) / self.clip.std)
        tr = visual.transformer
        if not getattr(tr, "batch_first", True):
            tokens = tokens.transpose(0, 1)
        blocks = list(tr.resblocks)
        out = []
        for i, block in enumerate(blocks):
            tokens = block(tokens)
            if i >= len(blocks) - self.layers:
                out.append(tokens if getattr(tr, "batch_first", True) else tokens.transpose(0, 1))
        return out


def freeze_module(module: M) -> M:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
