"""The paper's SGLD variant and its persistent replay buffer (Sec. 3.3 of the paper).

Following libs/utils.py ``MSGLD`` and libs/ebclr.py ``Buffer`` of 1202kbs/EBCLR:

* SGLD ascends the log-density with a *clamped* gradient and adds noise whose std depends on how
  often the sample has already been refined:

      x <- x + step * clamp(grad_x log q(x), -tau, tau) + std(c) * eps,   eps ~ N(0, I)
      std(c) = min_std + (max_std - min_std) * max(1 - c / threshold, 0)

  ``c`` is the sample's refinement count when it was drawn: a fresh sample (c = 0) gets 0.05, one
  refined 3 times or more gets 0.01. The loop runs ``iters`` (10) times per training step.
* The buffer holds ``size`` samples (in the network's [-1, 1] input scale) with their counts. A
  draw takes random entries and re-initialises a fraction ``rho`` of them (count 0). With the
  official ``CD_ratio: 1.0`` a re-initialised sample is an augmented *training view* (as in
  contrastive divergence), not uniform noise; the initial buffer is made the same way with count 5.
  After SGLD the refined samples are written back to the entries they were drawn from.

The sampler takes the log-density as an argument (model and sampler stay separate).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from components.papers.ebclr.config import SGLDConfig


def noise_std(count: torch.Tensor, cfg: SGLDConfig) -> torch.Tensor:
    """Per-sample noise std ``(N, 1, 1, 1)`` from refinement counts ``(N, 1, 1, 1)`` (``MSGLD.__get_std__``)."""
    decay = torch.clamp(1.0 - count / cfg.threshold, min=0.0)
    return cfg.min_std + (cfg.max_std - cfg.min_std) * decay


def sgld(
    log_density: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    count: torch.Tensor,
    cfg: SGLDConfig,
    gen: torch.Generator,
) -> torch.Tensor:
    """Run ``cfg.iters`` clamped SGLD steps from ``x0`` ``(N, C, H, W)``; returns the samples (detached).

    Args:
        log_density: ``x -> (N,)`` unnormalised log-density of each sample (summed for the gradient).
        count: ``(N, 1, 1, 1)`` refinement counts of the starting points.
        gen: CPU generator for the Langevin noise (drawn on CPU so a run is reproducible on any device).
    """
    std = noise_std(count, cfg).to(x0.device)
    x = x0.detach().clone()
    for _ in range(cfg.iters):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(log_density(x).sum(), x)  # only d/dx: no parameter gradients
        noise = torch.randn(x.shape, generator=gen).to(x.device)
        x = (x + cfg.step * grad.clamp(-cfg.clamp, cfg.clamp) + std * noise).detach()
    return x


class ReplayBuffer:
    """Persistent SGLD chains: ``(size, C, H, W)`` samples in [-1, 1] scale and their refinement counts.

    Args:
        size: number of chains.
        fresh: ``n -> (n, C, H, W)`` new starting points (augmented training views scaled to [-1, 1]).
        rho: fraction re-initialised at each draw.
        init_count: count given to the initial buffer (5.0 in the official code: minimum noise).
    """

    def __init__(self, size: int, fresh: Callable[[int], torch.Tensor], rho: float, init_count: float = 5.0) -> None:
        self.fresh = fresh
        self.rho = rho
        self.samples = fresh(size)
        self.counts = torch.full((size, 1, 1, 1), float(init_count))
        self._idx = torch.zeros(0, dtype=torch.long)

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` chains; ``int(n * rho)`` draws (with replacement, as ``Buffer.sample``) restart fresh.

        Returns:
            ``(x (n, C, H, W), count (n, 1, 1, 1))``, the count *before* this refinement; the stored
            counts are incremented by one.
        """
        self._idx = torch.randint(len(self.samples), (n,), generator=gen)
        x = self.samples[self._idx].clone()
        count = self.counts[self._idx].clone()
        restart = torch.randint(n, (int(n * self.rho),), generator=gen)
        if len(restart):
            x[restart] = self.fresh(n)[restart]
            count[restart] = 0.0
        self.counts[self._idx] = count + 1.0
        return x, count

    def update(self, x: torch.Tensor) -> None:
        """Write the refined chains back where the last ``sample`` drew them."""
        self.samples[self._idx] = x.detach().to(self.samples.device, self.samples.dtype)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"samples": self.samples, "counts": self.counts}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.samples = state["samples"].clone()
        self.counts = state["counts"].clone()
