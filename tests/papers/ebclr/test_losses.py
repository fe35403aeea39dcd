"""Properties of the EBCLR, NT-Xent and InfoNCE losses (libs/ebclr.py, libs/simclr.py, libs/moco.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from components.papers.ebclr.losses import (
    cosine,
    ebclr_generative,
    ebclr_loss,
    infonce_queue,
    log_pdf,
    neg_sq_dist,
    nt_xent,
)


def _z(n: int = 6, d: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_neg_sq_dist_is_scaled_cosine() -> None:
    x, y = _z(4) * 3, _z(5, seed=1) * 0.1
    assert torch.allclose(neg_sq_dist(x, y), 2 * cosine(x, y) - 2, atol=1e-5)
    assert neg_sq_dist(x, y).shape == (4, 5) and (neg_sq_dist(x, y) <= 1e-6).all()


def _nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, tau: float, sim) -> torch.Tensor:
    """The official form: for each of the 2N anchors, logits [positive, 2N-2 negatives], CE at 0, mean."""
    z = torch.cat([z1, z2])
    n2 = len(z)
    s = sim(z, z) / tau
    losses = []
    for i in range(n2):
        j = (i + n2 // 2) % n2
        negs = [s[i, k] for k in range(n2) if k not in (i, j)]
        logits = torch.stack([s[i, j], *negs])
        losses.append(-F.log_softmax(logits, 0)[0])
    return torch.stack(losses).mean()


def test_nt_xent_matches_reference() -> None:
    z1, z2 = _z(), _z(seed=2)
    assert torch.allclose(nt_xent(z1, z2, 0.1, "cosine"), _nt_xent_reference(z1, z2, 0.1, cosine), atol=1e-5)
    assert torch.allclose(nt_xent(z1, z2, 0.1, "neg_sq_dist"), _nt_xent_reference(z1, z2, 0.1, neg_sq_dist), atol=1e-5)


def test_nt_xent_prefers_aligned_pairs() -> None:
    z1 = torch.eye(4)
    aligned = nt_xent(z1, z1 + 0.01, 0.1)
    assert aligned < nt_xent(z1, z1.roll(1, 0), 0.1)
    assert aligned < 0.01  # orthogonal negatives, identical positives: near zero


def test_log_pdf_is_batch_logsumexp() -> None:
    z, ref = _z(3), _z(7, seed=3)
    manual = torch.stack([torch.log(torch.exp(neg_sq_dist(z[i : i + 1], ref) / 0.1).sum()) for i in range(3)])
    assert torch.allclose(log_pdf(z, ref, 0.1), manual, atol=1e-4)


def test_generative_term() -> None:
    z1, z2, zn = _z(), _z(seed=1), _z(seed=2)
    g = ebclr_generative(z1, z2, zn, 0.1, 0.0)
    assert torch.allclose(g, -log_pdf(z1, z2, 0.1).mean() + log_pdf(zn, z2, 0.1).mean())
    # lambda1 penalises the unnormalised projection norms of data and negative views (sums, not means)
    extra = ebclr_generative(z1, z2, zn, 0.1, 0.5) - g
    assert torch.allclose(extra, 0.5 * (z1.square().sum() + zn.square().sum()), atol=1e-4)
    # with negatives equal to the data views the data and noise terms cancel
    assert abs(float(ebclr_generative(z1, z2, z1, 0.1, 0.0))) < 1e-5
    # norm only matters through lambda1: the energy sees directions
    assert torch.allclose(ebclr_generative(z1 * 5, z2, zn, 0.1, 0.0), g, atol=1e-4)


def test_ebclr_loss_combines_terms() -> None:
    z1, z2, zn = _z(), _z(seed=1), _z(seed=2)
    t = ebclr_loss(z1, z2, zn, 0.1, 1e-3, 0.1)
    assert torch.allclose(t["loss"], 0.1 * t["generative"] + t["discriminative"])
    assert torch.allclose(t["discriminative"], nt_xent(z1, z2, 0.1, "neg_sq_dist"))


def test_generative_gradient_pushes_negatives_away() -> None:
    # A step on the generative term lowers the model density at the negatives relative to the data.
    z2 = _z(seed=1)
    z1 = (z2 + 0.05 * _z(seed=4)).requires_grad_(True)
    zn = _z(seed=2).requires_grad_(True)
    ebclr_generative(z1, z2, zn, 0.1, 0.0).backward()
    with torch.no_grad():
        before = log_pdf(zn, z2, 0.1).mean()
        after = log_pdf(zn - 0.05 * zn.grad, z2, 0.1).mean()
    assert after < before


def test_infonce_queue() -> None:
    q, k, queue = _z(4, 8), _z(4, 8, seed=1), _z(16, 8, seed=2)
    loss = infonce_queue(q, k, queue, 0.07)
    qn, kn, un = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(queue, dim=1)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True), qn @ un.T], 1) / 0.07
    assert torch.allclose(loss, F.cross_entropy(logits, torch.zeros(4, dtype=torch.long)), atol=1e-5)
    k.requires_grad_(True)
    q.requires_grad_(True)
    infonce_queue(q, k, queue).backward()
    assert k.grad is None and q.grad is not None  # keys are targets only (momentum encoder)
    assert infonce_queue(k, k, queue) < loss  # matching keys score better
    assert math.isfinite(float(loss))


def test_ablation_step_loss_is_nt_xent() -> None:
    # EBCLR with lambda2 = 0: the loss it differentiates is exactly NT-Xent with sim = -||.||^2, and no SGLD runs.
    from components.blocks.data.vision import digits
    from components.papers.ebclr.config import EBCLRPaperConfig
    from components.papers.ebclr.data import augment, to_input
    from components.papers.ebclr.methods import build_method

    cfg = EBCLRPaperConfig.model_validate({"model": {"width": 4, "proj_dim": 8}, "sgld": {"buffer_size": 16}})
    x = digits(16).train_x[:16]
    gen = torch.Generator().manual_seed(0)
    v1, v2 = augment(x, cfg.data, gen), augment(x, cfg.data, gen)
    torch.manual_seed(0)
    m = build_method("ebclr_lambda2_0", cfg, 16, x, torch.Generator().manual_seed(1), torch.device("cpu"), False)
    assert m.buffer is None and m.name == "ebclr_lambda2_0"
    with torch.no_grad():
        expected = nt_xent(m.net(to_input(v1)), m.net(to_input(v2)), 0.1, "neg_sq_dist")
    out = m.step(v1, v2)
    assert abs(out["loss"] - float(expected)) < 1e-5 and "generative" not in out
    # the full EBCLR at lambda2 = 0 would give the same value: lambda2 * generative + discriminative
    z1, z2, zn = _z(), _z(seed=1), _z(seed=2)
    assert torch.allclose(ebclr_loss(z1, z2, zn, 0.1, 1e-3, 0.0)["loss"], nt_xent(z1, z2, 0.1, "neg_sq_dist"))
