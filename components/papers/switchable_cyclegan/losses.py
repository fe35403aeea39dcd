"""The switchable CycleGAN losses (official Model.py ``backward_G`` / ``backward_D_*``), pure functions.

LSGAN (Mao et al. 2017; Model.py ``criterion_GAN = nn.MSELoss()``): the generator pushes D(fake)
towards 1; each discriminator minimises ((D(real) - 1)^2 + D(fake)^2) / 2. Cycle and identity
terms are L1. Total generator loss (train.py weights 1 / 10 / 5)::

    L_G = l_gan (LS(D_B(G_ab(a))) + LS(D_A(G_ba(b))))
        + l_cyc (|G_ba(G_ab(a)) - a|_1 + |G_ab(G_ba(b)) - b|_1)
        + l_idt (|G_ab(b) - b|_1 + |G_ba(a) - a|_1)

For the switchable generator G_ab = G(., alpha=0) and G_ba = G(., alpha=1) (one network; the official
assignment of Model.py, where the plain instance-norm path enhances).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Gen = Callable[[torch.Tensor], torch.Tensor]


def lsgan_generator(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(fake_logits, torch.ones_like(fake_logits))


def lsgan_discriminator(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (
        F.mse_loss(real_logits, torch.ones_like(real_logits)) + F.mse_loss(fake_logits, torch.zeros_like(fake_logits))
    )


def generator_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    g_ab: Gen,
    g_ba: Gen,
    d_a: Gen,
    d_b: Gen,
    lambda_gan: float,
    lambda_cycle: float,
    lambda_identity: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_G`` and its parts; also returns the fakes (``fake_b``, ``fake_a``) for the pools."""
    fake_b, fake_a = g_ab(a), g_ba(b)
    gan = lsgan_generator(d_b(fake_b)) + lsgan_generator(d_a(fake_a))
    cycle = F.l1_loss(g_ba(fake_b), a) + F.l1_loss(g_ab(fake_a), b)
    identity = F.l1_loss(g_ab(b), b) + F.l1_loss(g_ba(a), a)
    total = lambda_gan * gan + lambda_cycle * cycle + lambda_identity * identity
    return total, {
        "gan": gan.detach(),
        "cycle": cycle.detach(),
        "identity": identity.detach(),
        "fake_b": fake_b,
        "fake_a": fake_a,
    }
