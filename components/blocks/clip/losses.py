"""Losses and scores of the text-image model, pure functions of features (shared by the CLIP papers).

Notation: E_I, E_T the image and text encoders (L2-normalised outputs, ``TextImageModel``);
t the learnt log inverse temperature, exp(t) = ``model.logit_scale``.

* ``clip_loss``: the contrastive objective CLIP is trained with (Radford et al. 2021, Fig. 3):
  logits = exp(t) E_I E_T^T over a batch of N pairs; the mean of the cross-entropies over rows
  (image -> its caption) and columns (caption -> its image), labels on the diagonal.
* ``template_embedding``: prompt-template averaging (Radford et al. 2021, Sec. 3.1.4): the mean of
  the normalised embeddings of ``template.format(phrase)`` over the templates, renormalised.
* ``text_direction`` / ``directional_loss``: the directional CLIP loss of StyleGAN-NADA that
  DiffusionCLIP (Kim et al. 2022) and CLIPstyler (Kwon & Ye 2022) use:

      dT = E_T(t_tgt) - E_T(t_ref),   dI = E_I(x_gen) - E_I(x_ref),
      L_direction = 1 - <dI, dT> / (|dI| |dT|),

  with dT averaged over templates as the official code does (DiffusionCLIP losses/clip_loss.py
  ``compute_text_direction``: the mean over templates of per-template normalised differences).
* ``zero_shot_probs``: softmax over classes of exp(t) <E_I(x), template-averaged E_T(class)>.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F


class Encoders(Protocol):
    """What the losses need of a text-image model (``TextImageModel`` has it)."""

    @property
    def logit_scale(self) -> torch.Tensor: ...

    def encode_image(self, images: torch.Tensor) -> torch.Tensor: ...
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor: ...


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of N paired ``(N, D)`` L2-normalised features (Radford et al. 2021, Fig. 3)."""
    logits = logit_scale * image_features @ text_features.T  # (N, N): image i against caption j
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def template_embedding(model: Encoders, phrase: str, templates: Sequence[str]) -> torch.Tensor:
    """Prompt ensembling: normalised mean of E_T over ``templates`` filled with ``phrase``: ``(D,)``."""
    feats = model.encode_text([t.format(phrase) for t in templates])  # (K, D), each normalised
    return F.normalize(feats.mean(0), dim=-1)


def text_direction(model: Encoders, source: str, target: str, templates: Sequence[str]) -> torch.Tensor:
    """dT: the normalised mean over templates of E_T(template(target)) - E_T(template(source)): ``(D,)``."""
    src = model.encode_text([t.format(source) for t in templates])
    tgt = model.encode_text([t.format(target) for t in templates])
    return F.normalize((tgt - src).mean(0), dim=-1)


def directional_loss(gen_features: torch.Tensor, ref_features: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Per-sample ``1 - cos(E_I(x_gen) - E_I(x_ref), dT)``: ``(B, D), (B, D), (D,) -> (B,)``.

    The image difference is normalised with a 1e-7 floor as in the official code, so an unchanged
    image (dI = 0) gives 1 with a finite gradient.
    """
    d_img = gen_features - ref_features
    d_img = d_img / (d_img.norm(dim=-1, keepdim=True) + 1e-7)
    return 1 - d_img @ direction


def class_embeddings(model: Encoders, phrases: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Zero-shot classifier weights: one template-averaged embedding per class phrase, ``(K, D)``."""
    return torch.stack([template_embedding(model, p, templates) for p in phrases])


def zero_shot_probs(model: Encoders, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` class probabilities of images in [0, 1] against ``class_embeddings`` ``(K, D)``."""
    logits = model.logit_scale * model.encode_image(images) @ weights.T
    return logits.softmax(dim=-1)
