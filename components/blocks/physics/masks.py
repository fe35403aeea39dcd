"""Sampling masks: Cartesian k-space lines, variable-density k-space points, inpainting boxes.

k-space masks are in the centred layout of ``operators.fft2c`` (DC at ``(H // 2, W // 2)``).
"""

from __future__ import annotations

import torch


def cartesian_mask(
    h: int, w: int, acceleration: float, center_fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """Random phase-encode lines (columns) plus a fully sampled centre (fastMRI's RandomMaskFunc).

    ``round(w * center_fraction)`` central columns are always kept; the rest are drawn uniformly
    without replacement so that about ``w / acceleration`` columns are sampled in all.

    Returns:
        float32 ``(h, w)`` of 0/1.
    """
    if acceleration < 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    n_center = max(1, round(w * center_fraction))
    n_total = max(n_center, round(w / acceleration))
    cols = torch.zeros(w)
    start = (w - n_center + 1) // 2
    cols[start : start + n_center] = 1
    others = torch.nonzero(cols == 0).flatten()
    pick = others[torch.randperm(len(others), generator=generator)[: n_total - n_center]]
    cols[pick] = 1
    return cols.expand(h, w).clone()


def variable_density_mask(
    h: int, w: int, acceleration: float, center_fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """2-D random points with density decaying from the centre, plus a fully sampled centre disc.

    The density is ``p(r) ~ (1 - r)^2`` in normalised radius r (Lustig et al. 2007's polynomial
    variable density), scaled so that about ``h w / acceleration`` points are sampled in all.
    """
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    r = (yy**2 + xx**2).sqrt().clamp(max=1.0)
    centre = r <= center_fraction
    pdf = (1 - r) ** 2
    pdf[centre] = 0
    target = h * w / acceleration - centre.sum()
    pdf = (pdf * max(float(target), 0.0) / pdf.sum()).clamp(max=1.0)
    mask = (torch.rand(h, w, generator=generator) < pdf) | centre
    return mask.float()


def box_mask(h: int, w: int, box_fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Inpainting mask: 1 = observed, 0 = a missing square of side ``box_fraction * min(h, w)`` at a
    random position. float32 ``(h, w)``."""
    side = max(1, round(box_fraction * min(h, w)))
    top = int(torch.randint(0, h - side + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - side + 1, (1,), generator=generator))
    mask = torch.ones(h, w)
    mask[top : top + side, left : left + side] = 0
    return mask
