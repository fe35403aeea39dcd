"""The three task losses (pure functions); FeSTA's Sec. 3: each client's tail computes its task's loss.

Notation: ``out`` is the tail's output, the targets come from the client's own labels.

* cls (normal / pneumonia-like / COVID-like): cross-entropy of the class logits ``(B, 3)``.
* sev (lesion fraction of the lung area, in [0, 1]): ``SEV_WEIGHT`` times the mean squared error of
  the regressor's output ``(B,)``. The weight brings the loss (about 0.01 for the mean predictor) to
  the order of the other tasks', so that the severity clients' gradients on the shared body are not
  a hundred times smaller (the paper's severity target is a 0-18 score array, of order one). The
  output stays on the severity's own scale: regressing ``10 * severity`` instead made the first
  steps (error ~2) collapse the regressor onto the mean, measured.
* seg (lesion mask): binary cross-entropy of the mask logits ``(B, 1, S, S)`` plus ``w`` times the
  soft Dice loss ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)`` per image (the +1 keeps images
  without a lesion defined), averaged over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SEV_WEIGHT = 100.0


def cls_loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``(B, 3)`` logits against ``(B,)`` int labels."""
    return F.cross_entropy(logits, label)


def sev_loss(pred: torch.Tensor, severity: torch.Tensor) -> torch.Tensor:
    """``SEV_WEIGHT`` * MSE of ``(B,)`` outputs against the severity."""
    return SEV_WEIGHT * F.mse_loss(pred, severity)


def soft_dice_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1 - soft Dice`` per image of ``(B, 1, S, S)`` logits vs a 0/1 mask, averaged over the batch."""
    p = torch.sigmoid(logits).flatten(1)
    t = mask.flatten(1)
    dice = (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return (1 - dice).mean()


def seg_loss(logits: torch.Tensor, mask: torch.Tensor, dice_weight: float = 1.0) -> torch.Tensor:
    """BCE + ``dice_weight`` * soft Dice of ``(B, 1, S, S)`` logits against the 0/1 mask."""
    return F.binary_cross_entropy_with_logits(logits, mask) + dice_weight * soft_dice_loss(logits, mask)


def task_loss(task: str, out: torch.Tensor, batch: dict[str, torch.Tensor], dice_weight: float = 1.0) -> torch.Tensor:
    """The loss of ``task`` on a batch ``{"label", "severity", "mask"}``."""
    if task == "cls":
        return cls_loss(out, batch["label"])
    if task == "sev":
        return sev_loss(out, batch["severity"])
    if task == "seg":
        return seg_loss(out, batch["mask"], dice_weight)
    raise ValueError(f"unknown task {task!r}")
