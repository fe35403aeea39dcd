"""An independent judge of drawn attributes: a small CNN trained on the true labels of the training faces.

DiffusionCLIP is guided by the CLIP block and its edits are scored by the same block (the issue's
measure). A model optimised against a network can fool that network; this classifier never guided
anything, knows the drawn truth (mood, colour) and so tells whether an edit changed the attribute
itself. Trained in ``evaluate`` for ``eval.classifier_steps`` Adam steps (seconds), drawn data only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from components.blocks.data.drawings import COLOURS, MOODS

ATTRIBUTES = {"mood": MOODS, "colour": tuple(COLOURS)}


class Judge(nn.Module):
    """``(B, 3, S, S)`` in [-1, 1] -> logits per attribute (``{"mood": (B, 2), "colour": (B, 7)}``)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.heads = nn.ModuleDict({k: nn.Linear(32 * width, len(v)) for k, v in ATTRIBUTES.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(x)
        return {k: head(h) for k, head in self.heads.items()}

    @torch.no_grad()
    def prob(self, x: torch.Tensor, attribute: str) -> torch.Tensor:
        """``(B,)`` probability of ``"mood:smiling"``-style attribute values."""
        key, value = attribute.split(":")
        return self.forward(x)[key].softmax(-1)[:, ATTRIBUTES[key].index(value)]


def train_judge(images: torch.Tensor, attrs: list[dict[str, str]], steps: int, seed: int, batch: int = 64) -> Judge:
    """Fit the judge on ``images`` ``(N, 3, S, S)`` in [-1, 1] with their drawn attributes (flips as augmentation)."""
    torch.manual_seed(seed)
    judge = Judge()
    labels = {k: torch.tensor([v.index(a[k]) for a in attrs]) for k, v in ATTRIBUTES.items()}
    opt = torch.optim.Adam(judge.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        x = images[idx]
        x = torch.where((torch.rand(batch, generator=gen) < 0.5)[:, None, None, None], x.flip(-1), x)
        out = judge(x)
        loss = sum(F.cross_entropy(out[k], labels[k][idx]) for k in ATTRIBUTES)
        opt.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        opt.step()
    return judge.eval()
