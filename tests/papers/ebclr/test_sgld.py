"""The paper's SGLD variant and replay buffer (libs/utils.py MSGLD, libs/ebclr.py Buffer)."""

from __future__ import annotations

import torch

from components.papers.ebclr.config import SGLDConfig
from components.papers.ebclr.sgld import ReplayBuffer, noise_std, sgld


def test_noise_decays_with_refinements() -> None:
    cfg = SGLDConfig()
    std = noise_std(torch.tensor([0.0, 1.0, 3.0, 10.0]).view(-1, 1, 1, 1), cfg).flatten()
    expected = torch.tensor([0.05, 0.01 + 0.04 * (2 / 3), 0.01, 0.01])
    assert torch.allclose(std, expected)


def test_sgld_clamped_ascent_without_noise() -> None:
    cfg = SGLDConfig(iters=5, step=0.05, clamp=1.0, max_std=0.0, min_std=0.0)
    x0 = torch.full((2, 1, 2, 2), 10.0)
    # log q(x) = -||x||^2 / 2: gradient -x = -10 is clamped to -1, so each step moves exactly 0.05
    out = sgld(lambda x: -0.5 * x.flatten(1).square().sum(1), x0, torch.zeros(2, 1, 1, 1), cfg, torch.Generator())
    assert torch.allclose(out, torch.full_like(x0, 10.0 - 5 * 0.05))
    assert not out.requires_grad


def test_sgld_noise_follows_counts() -> None:
    cfg = SGLDConfig(iters=1, step=0.05)
    x0 = torch.zeros(200, 1, 4, 4)
    count = torch.cat([torch.zeros(100, 1, 1, 1), torch.full((100, 1, 1, 1), 5.0)])
    out = sgld(
        lambda x: torch.zeros(len(x), requires_grad=True) + 0 * x.sum(),
        x0,
        count,
        cfg,
        torch.Generator().manual_seed(0),
    )
    fresh, refined = out[:100].std(), out[100:].std()
    assert abs(fresh - 0.05) < 0.005 and abs(refined - 0.01) < 0.001


def test_buffer_reinitialises_a_fraction_and_counts() -> None:
    fresh_calls = []

    def fresh(n: int) -> torch.Tensor:
        fresh_calls.append(n)
        return torch.full((n, 1, 2, 2), -7.0)

    buf = ReplayBuffer(50, fresh, rho=0.4, init_count=5.0)
    buf.samples.fill_(3.0)
    gen = torch.Generator().manual_seed(0)
    x, count = buf.sample(20, gen)
    restarted = count.flatten() == 0
    assert 1 <= int(restarted.sum()) <= 8  # int(20 * 0.4) draws with replacement
    assert (x[restarted] == -7.0).all() and (x[~restarted] == 3.0).all() and (count[~restarted] == 5.0).all()
    once = torch.tensor([int((buf._idx == i).sum()) == 1 for i in buf._idx])  # draws are with replacement
    assert once.any() and torch.equal(buf.counts[buf._idx][once], (count + 1)[once])
    buf.update(torch.full_like(x, 1.5))
    assert (buf.samples[buf._idx] == 1.5).all()
    state = {k: v.clone() for k, v in buf.state_dict().items()}
    other = ReplayBuffer(50, fresh, 0.4)
    other.load_state_dict(state)
    assert torch.equal(other.samples, buf.samples) and torch.equal(other.counts, buf.counts)
