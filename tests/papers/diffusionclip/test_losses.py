"""The fine-tuning objective on analytic embeddings."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from components.papers.diffusionclip.losses import finetune_loss


class Linear:
    """An 'image encoder' that reads the mean colour of an image in [0, 1]: E_I(x) = normalise(mean RGB - 0.5)."""

    logit_scale = torch.tensor(1.0)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(images.mean(dim=(2, 3)) - 0.5, dim=-1)

    def encode_text(self, texts):  # not used by the loss
        raise AssertionError


def test_finetune_loss_formula() -> None:
    enc = Linear()
    ref = torch.full((1, 3, 4, 4), -0.2)  # grey in [-1, 1]
    ref[:, 0] = 0.2  # a little red
    blue = torch.tensor([-1.0, -1.0, 1.0])  # images in [0, 1]: gen - ref moves toward blue
    direction = F.normalize(blue, dim=0)
    gen = ref.clone()
    gen[:, 2] += 0.6
    e_gen, e_ref = enc.encode_image((gen + 1) / 2), enc.encode_image((ref + 1) / 2)
    d_img = F.normalize(e_gen - e_ref, dim=-1)
    cos = float(d_img @ direction)
    loss, parts = finetune_loss(enc, gen, ref, direction, clip_weight=3.0, l1_weight=1.0)
    assert parts["direction"] == pytest.approx(1 - cos, abs=1e-6)
    assert parts["clip"] == pytest.approx(-math.log((1 + cos) / 2), abs=1e-6)  # -log((2 - L_dir) / 2)
    assert parts["l1"] == pytest.approx(0.6 / 3, abs=1e-6)  # one channel of three moved by 0.6
    assert loss.item() == pytest.approx(3 * parts["clip"] + parts["l1"], abs=1e-6)


def test_an_edit_along_the_text_direction_costs_only_its_l1() -> None:
    enc = Linear()
    ref = torch.zeros(2, 3, 4, 4)
    gen = ref.clone()
    gen[:, 2] += 0.5
    direction = enc.encode_image((gen + 1) / 2)[0] - enc.encode_image((ref + 1) / 2)[0]
    loss, parts = finetune_loss(enc, gen, ref, F.normalize(direction, dim=0), 3.0, 0.0)
    assert parts["clip"] == pytest.approx(0.0, abs=1e-6) and loss.item() == pytest.approx(0.0, abs=1e-6)
    against, _ = finetune_loss(enc, ref - (gen - ref), ref, F.normalize(direction, dim=0), 3.0, 0.0)
    assert against.item() > 10  # -log of (1 + cos) / 2 near 0
