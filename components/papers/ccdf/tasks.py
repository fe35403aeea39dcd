"""The paper's three inverse problems (Sec. 4): measurement simulation and the simple initialiser.

Images live in the model's space, ``(B, 1, H, W)`` in [-1, 1]. The operators are linear, so a
measurement of a [0, 1] image maps to this space exactly (``A(2 x - 1) = 2 A x - A 1``).

=========  ==========================================  ===========================================
task       forward operator (components.blocks.physics)  simple initial estimate x0_hat
=========  ==========================================  ===========================================
sr         average pooling x s (``Downsample``)          bicubic upsampling of y
inpaint    box mask (``Masking``)                        the masked image (holes at 0 = mid-grey)
mri        ``M * fft2c`` at acceleration R, single coil   zero-filled ``Re F^H M y`` (= A^T y)
=========  ==========================================  ===========================================

``tv_init``: the classical solver's answer as x0_hat (TV-regularised least squares,
components.blocks.physics.tv), the paper's point that CCDF can start from *any* solver's output
(Sec. 3.3: "x0_hat ... from a feed-forward network or any other method"), and the classical
baseline (TV-CS for MRI) itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from components.blocks.physics.masks import (
    box_mask,
    cartesian_mask,
    variable_density_mask,
)
from components.blocks.physics.operators import Downsample, FourierSampling, Masking
from components.blocks.physics.tv import tv_reconstruct
from components.papers.ccdf.config import TaskConfig

TASKS = ("sr", "inpaint", "mri")
Operator = Downsample | Masking | FourierSampling


def kspace_mask(h: int, w: int, tcfg: TaskConfig, generator: torch.Generator) -> torch.Tensor:
    """One k-space mask ``(h, w)`` of the configured kind (Cartesian lines or variable density)."""
    fn = cartesian_mask if tcfg.mri_mask == "cartesian" else variable_density_mask
    return fn(h, w, tcfg.acceleration, tcfg.center_fraction, generator)


def make_operator(task: str, shape: tuple[int, ...], tcfg: TaskConfig, generator: torch.Generator) -> Operator:
    """A random instance of the task's operator for a batch of ``shape`` ``(B, 1, H, W)``
    (a fresh mask per image for inpainting and MRI)."""
    b, _, h, w = shape
    if task == "sr":
        return Downsample(tcfg.sr_factor)
    if task == "inpaint":
        return Masking(torch.stack([box_mask(h, w, tcfg.box_fraction, generator) for _ in range(b)])[:, None])
    if task.startswith("mri"):
        return FourierSampling(torch.stack([kspace_mask(h, w, tcfg, generator) for _ in range(b)])[:, None])
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def simple_init(task: str, op: Operator, y: torch.Tensor) -> torch.Tensor:
    """The simple x0_hat of the table above, ``(B, 1, H, W)`` in [-1, 1]."""
    if task == "sr":
        assert isinstance(op, Downsample)  # simulate("sr", ...) builds a Downsample
        return F.interpolate(y, scale_factor=op.factor, mode="bicubic", align_corners=False).clamp(-1, 1)
    return op.A_adjoint(y).clamp(-1, 1)


def tv_init(op: Operator, y: torch.Tensor, lam: float, iters: int) -> torch.Tensor:
    """TV-regularised reconstruction in the model's space ``(B, 1, H, W)`` in [-1, 1].

    The data term is 1/2 ||A x - y||^2 with x in [-1, 1]: lam is relative to that scale."""
    return tv_reconstruct(op, y, lam, iters=iters, bounds=(-1.0, 1.0))


def simulate(task: str, x: torch.Tensor, tcfg: TaskConfig, generator: torch.Generator) -> tuple[Operator, torch.Tensor]:
    """``(operator, y = A x)`` for ground truth ``x`` ``(B, 1, H, W)`` (noiseless, as the paper)."""
    op = make_operator(task, tuple(x.shape), tcfg, generator)
    return op, op.A(x)
