"""The Noise2Noise U-Net (Lehtinen et al. 2018, appendix Table 2), with width and depth as knobs.

The Noise2Score family (Noise2Score, its Tweedie-distribution extension, arXiv 2112.03696) uses
this network as the score model (official code: cubeyoung/NoiseAdaptive2Score,
models/networks.py, class UNet). At ``width=48, depth=5`` it is the paper's network: 48-channel
encoder convolutions with LeakyReLU(0.1), five 2x poolings, transposed-convolution upsampling,
96-channel decoder and a 64 -> 32 -> out head. Two deliberate differences from that file:

* its encoder/decoder blocks are re-used module objects (so levels share weights, a side effect
  of the port); here every level has its own weights, as in the Noise2Noise table;
* ``depth`` and ``width`` scale the network down for a CPU without changing its kind.

Input height and width must be multiples of ``2**depth`` (see ``pad_to_multiple``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1)]


def _up(ch: int) -> nn.Module:
    return nn.ConvTranspose2d(ch, ch, 3, stride=2, padding=1, output_padding=1)


class N2NUNet(nn.Module):
    """Noise2Noise U-Net.

    Args:
        in_channels: image channels in.
        out_channels: channels out (the score has as many channels as the image).
        width: encoder channels (48 in the paper); the decoder uses ``2 * width``.
        depth: number of 2x poolings (5 in the paper).

    Shapes:
        ``(B, in_channels, H, W) -> (B, out_channels, H, W)``, H and W multiples of ``2**depth``.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 48, depth: int = 5) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.depth = depth
        w, w2 = width, 2 * width
        head1, head2 = max(4, round(width * 4 / 3)), max(2, round(width * 2 / 3))  # 64, 32 at width 48
        # enc_conv0, enc_conv1, pool1
        self.enc = nn.ModuleList([nn.Sequential(*_conv(in_channels, w), *_conv(w, w), nn.MaxPool2d(2))])
        # enc_conv(i), pool(i), i = 2..depth
        self.enc.extend(nn.Sequential(*_conv(w, w), nn.MaxPool2d(2)) for _ in range(depth - 1))
        # enc_conv6, upsample5
        self.bottleneck = nn.Sequential(*_conv(w, w), _up(w))
        # dec_conv(i)a, dec_conv(i)b, upsample(i-1): the deepest takes w + w, the others 2w + w
        self.dec = nn.ModuleList()
        for level in range(depth - 1):
            cin = 2 * w if level == 0 else w2 + w
            self.dec.append(nn.Sequential(*_conv(cin, w2), *_conv(w2, w2), _up(w2)))
        cin_head = (w2 if depth > 1 else w) + in_channels
        # dec_conv1a, dec_conv1b, dec_conv1c (linear output)
        self.head = nn.Sequential(
            *_conv(cin_head, head1), *_conv(head1, head2), nn.Conv2d(head2, out_channels, 3, padding=1)
        )
        for m in self.modules():  # He initialisation, as in the paper's code (_init_weights)
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight)
                assert m.bias is not None  # every conv here is built with a bias
                nn.init.zeros_(m.bias)

    @property
    def multiple(self) -> int:
        """Spatial sizes must be multiples of this."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        h = x
        for block in self.enc:
            h = block(h)
            skips.append(h)
        skips.pop()  # the deepest pooled map feeds the bottleneck, not a skip
        h = self.bottleneck(h)
        for block in self.dec:
            h = block(torch.cat([h, skips.pop()], dim=1))
        return self.head(torch.cat([h, skips.pop()], dim=1))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad ``(B, C, H, W)`` on the bottom/right to multiples of ``multiple``.

    Returns:
        The padded tensor and the original ``(H, W)`` to crop back to.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)
