"""DiffusionCLIP's fine-tuning objective (official ``clip_finetune``), a pure function.

    L = clip_weight * L_clip + l1_weight * L_1,
    L_clip = -log((2 - L_direction) / 2),   L_direction = mean_b [1 - cos(dI_b, dT)]  (the directional CLIP loss),
    L_1 = mean |x_gen - x_ref|  (the official ``nn.L1Loss()(x0, x)``, on [-1, 1] images).

The official code feeds L_direction through -log((2 - L) / 2) = -log((1 + cos) / 2), which is 0 when
the edit is along dT and grows without bound as it turns against it. The paper's identity loss
needs a face-recognition network (ArcFace) and is left out (its weight, id_loss_w, is 0 in the
official command for non-identity edits); the L1 term keeps the image close.
"""

from __future__ import annotations

import torch

from components.blocks.clip.losses import Encoders, directional_loss


def finetune_loss(
    clip: Encoders,
    x_gen: torch.Tensor,
    x_ref: torch.Tensor,
    direction: torch.Tensor,
    clip_weight: float,
    l1_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``(loss, {"clip": L_clip, "direction": L_direction, "l1": L_1})`` for images in [-1, 1]."""
    gen, ref = clip.encode_image((x_gen + 1) / 2), clip.encode_image((x_ref + 1) / 2)
    l_dir = directional_loss(gen, ref, direction).mean()
    l_clip = -torch.log((2 - l_dir) / 2)
    l_1 = (x_gen - x_ref).abs().mean()
    loss = clip_weight * l_clip + l1_weight * l_1
    return loss, {"clip": float(l_clip.detach()), "direction": float(l_dir.detach()), "l1": float(l_1.detach())}
