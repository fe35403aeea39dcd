"""CCDF stops on its caller's ``should_stop`` (checked before every network evaluation)."""

from __future__ import annotations

import pytest
import torch

from components.blocks.diffusion.schedule import alphas_cumprod
from components.blocks.physics.operators import Downsample
from components.papers.ccdf.solver import ccdf

ABAR = alphas_cumprod()


def test_ccdf_stops_after_the_budget_and_runs_unchanged_without_it() -> None:
    calls = []

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        calls.append(int(t[0]))
        return torch.zeros_like(x)

    x0 = torch.zeros(1, 1, 8, 8)
    op = Downsample(2)
    y = op.A(x0)
    checks = iter(range(100))
    with pytest.raises(TimeoutError, match="after 3 network evaluations"):
        ccdf(
            eps,
            x0,
            op,
            y,
            ABAR,
            steps=20,
            t0=1.0,
            generator=torch.Generator().manual_seed(0),
            should_stop=lambda: next(checks) >= 3,
        )
    assert len(calls) == 3
    a, nfe = ccdf(eps, x0, op, y, ABAR, steps=20, t0=0.5, generator=torch.Generator().manual_seed(0))
    b, _ = ccdf(
        eps, x0, op, y, ABAR, steps=20, t0=0.5, generator=torch.Generator().manual_seed(0), should_stop=lambda: False
    )
    assert nfe == 10 and torch.equal(a, b)
