"""The three objectives as pure functions: EBCLR, NT-Xent (SimCLR) and InfoNCE with a queue (MoCo v2).

Notation (paper -> code):

=====================  ==========================  ==============================================
paper                  code                        meaning
=====================  ==========================  ==============================================
v, v'                  x1, x2                      two augmented views of the same image
z = g(f(v))            z1, z2  (N, d)              projections (encoder f, projection head g)
sim(z, z')             ``neg_sq_dist``             -||z/|z| - z'/|z'| ||^2 (Sec. 3, "similarity")
tau                    temperature                 0.1
E(v, v') = -sim/tau    -logits                     energy of a pair (joint model of positive pairs)
log q(v | v')          ``log_pdf``                 logsumexp_j sim(z_i, z'_j)/tau (batch estimate)
v~ (negatives)         zn = g(f(x_n))              SGLD samples of the marginal (sgld.py)
lambda1, lambda2       lambda1, lambda2            projection-norm penalty, generative weight
=====================  ==========================  ==============================================

EBCLR (paper Eq. 12-14 in practice; the exact form is libs/ebclr.py ``EBCLR``):

    gen = -mean_i log_pdf(z1_i; z2) + mean_i log_pdf(zn_i; z2) + lambda1 (sum ||z1||^2 + sum ||zn||^2)
    loss = lambda2 * gen + NT-Xent(z1, z2) with sim = -||.||^2 on normalised z

The generative term raises the (unnormalised) log-density of the data views under the energy model
and lowers it at the SGLD samples: the contrastive-divergence gradient of log q(v), the marginal of
the joint model of positive pairs. The lambda1 term acts on the *unnormalised* projections (their
norm is otherwise free: the similarity only sees the directions). The discriminative term is
SimCLR's NT-Xent with the same similarity (libs/ebclr.py ``SimCLR_Loss``, ``similarity_f``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def neg_sq_dist(x: torch.Tensor, y: torch.Tensor, normalize: bool = True, eps: float = 1e-10) -> torch.Tensor:
    """``sim[i, j] = -||x_i - y_j||^2`` on L2-normalised rows: ``(N, d), (M, d) -> (N, M)``.

    Equals ``2 cos(x_i, y_j) - 2`` for normalised inputs (libs/ebclr.py ``similarity_f``).
    """
    if normalize:
        x = x / (x.norm(dim=1, keepdim=True) + eps)
        y = y / (y.norm(dim=1, keepdim=True) + eps)
    return -(x[:, None] - y[None]).square().sum(dim=2)


def cosine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(N, d), (M, d) -> (N, M)`` cosine similarities (the SimCLR baseline, libs/simclr.py)."""
    return F.normalize(x, dim=1) @ F.normalize(y, dim=1).T


def log_pdf(z: torch.Tensor, z_ref: torch.Tensor, temperature: float) -> torch.Tensor:
    """``log sum_j exp(sim(z_i, z_ref_j) / tau)``: ``(N, d), (M, d) -> (N,)``.

    The unnormalised log-density of the views ``z`` under the joint energy model, marginalised with
    the batch of reference views (libs/ebclr.py ``log_pdf`` = ``logsumexp(logits(x, y))``).
    """
    return torch.logsumexp(neg_sq_dist(z, z_ref) / temperature, dim=1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float, similarity: str = "cosine") -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views: each view's positive is its pair, the other 2N-2 are negatives.

    Args:
        z1, z2: ``(N, d)`` projections of the two views (unnormalised; the similarity normalises).
        similarity: "cosine" (SimCLR) or "neg_sq_dist" (EBCLR's discriminative term).

    Returns:
        the mean over the 2N anchors of ``-log softmax`` of the positive (a scalar).
    """
    n = z1.shape[0]
    z = torch.cat([z1, z2])
    sim = (cosine(z, z) if similarity == "cosine" else neg_sq_dist(z, z)) / temperature  # (2N, 2N)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))  # no self-pairs
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def ebclr_generative(
    z1: torch.Tensor, z2: torch.Tensor, zn: torch.Tensor, temperature: float, lambda1: float
) -> torch.Tensor:
    """The generative term: ``-E[log q(v1)] + E[log q(v~)] + lambda1 (||z1||^2 + ||zn||^2)`` (a scalar).

    ``z1`` ``(N, d)`` data views, ``z2`` ``(N, d)`` the reference views, ``zn`` ``(M, d)`` SGLD samples.
    """
    data = log_pdf(z1, z2, temperature).mean()
    noise = log_pdf(zn, z2, temperature).mean()
    return -data + noise + lambda1 * (z1.square().sum() + zn.square().sum())


def ebclr_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    zn: torch.Tensor,
    temperature: float = 0.1,
    lambda1: float = 1e-3,
    lambda2: float = 0.1,
) -> dict[str, torch.Tensor]:
    """EBCLR: ``lambda2 * generative + NT-Xent(sim = -||.||^2)``.

    Returns:
        ``{"loss", "generative", "discriminative"}`` (scalars; only ``loss`` is differentiated).
    """
    gen = ebclr_generative(z1, z2, zn, temperature, lambda1)
    disc = nt_xent(z1, z2, temperature, similarity="neg_sq_dist")
    return {"loss": lambda2 * gen + disc, "generative": gen.detach(), "discriminative": disc.detach()}


def infonce_queue(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """MoCo v2's InfoNCE: the positive is the momentum key of the same image, negatives the queue.

    Args:
        q: ``(N, d)`` query projections (gradient flows); k: ``(N, d)`` keys (no gradient).
        queue: ``(K, d)`` keys of earlier batches.

    Returns:
        cross-entropy with the positive at index 0 of ``[q.k, q.queue^T] / T`` (a scalar).
    """
    q, k, queue = F.normalize(q, dim=1), F.normalize(k.detach(), dim=1), F.normalize(queue.detach(), dim=1)
    pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
    neg = q @ queue.T  # (N, K)
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))
