"""Frozen-feature evaluation of self-supervised encoders: linear probe and k-NN.

* ``embed``: run an encoder over a dataset in eval mode, without gradients.
* ``fit_linear_probe``: multinomial logistic regression on frozen features, standardised with the
  training set's mean and std, trained full-batch with L-BFGS (deterministic, a few seconds on CPU)
  or with Adam for ``epochs`` passes (the EBCLR official protocol, libs/evaluation.py ``train``).
* ``knn_accuracy``: the k-NN monitor of the common SSL protocol (Wu et al. 2018, InstDisc; used by
  MoCo and solo-learn): cosine similarity to the training features, the top K=20 neighbours vote
  with weight ``exp(sim / T)``, T = 0.07.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def embed(net: nn.Module, x: torch.Tensor, batch_size: int = 256, device: torch.device | None = None) -> torch.Tensor:
    """Features of ``x`` ``(N, C, H, W)`` -> ``(N, D)`` float32 on CPU; ``net`` is put in eval mode and restored."""
    was_training = net.training
    net.eval()
    device = device or next(net.parameters()).device
    out = [net(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    net.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


@dataclass
class LinearProbe:
    """A fitted probe: ``logits = ((z - mean) / std) @ weight.T + bias``; weight ``(K, D)``."""

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """``(N, D) -> (N, K)``."""
        return ((z - self.mean) / self.std) @ self.weight.T + self.bias

    def accuracy(self, z: torch.Tensor, y: torch.Tensor) -> float:
        return float((self.logits(z).argmax(1) == y).float().mean()) if len(y) else float("nan")


def fit_linear_probe(
    z: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    method: Literal["lbfgs", "adam"] = "lbfgs",
    epochs: int = 100,
    weight_decay: float = 1e-4,
    lr: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
) -> LinearProbe:
    """Fit a linear classifier on frozen features.

    Args:
        z: ``(N, D)`` training features; y: ``(N,)`` integer labels in ``[0, n_classes)``.
        method: "lbfgs" (full batch, ``epochs`` = max iterations) or "adam" (mini-batches).
        weight_decay: L2 on the weights (keeps L-BFGS bounded on separable data).

    Returns:
        the probe with the standardisation folded in.
    """
    z = z.double()
    mean = z.mean(0)
    std = z.std(0).clamp_min(1e-6) if len(z) > 1 else torch.ones_like(mean)
    zs = (z - mean) / std
    gen = torch.Generator().manual_seed(seed)
    w = (torch.randn(n_classes, z.shape[1], generator=gen, dtype=torch.float64) * 0.01).requires_grad_(True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)

    def loss_fn(zb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(zb @ w.T + b, yb) + weight_decay * w.square().sum()

    if method == "lbfgs":
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=epochs, history_size=20, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn(zs, y)
            loss.backward()
            return loss

        opt.step(closure)
    elif method == "adam":
        adam = torch.optim.Adam([w, b], lr=lr)
        for _ in range(epochs):
            perm = torch.randperm(len(zs), generator=gen)
            for i in range(0, len(zs), batch_size):
                idx = perm[i : i + batch_size]
                adam.zero_grad()
                loss_fn(zs[idx], y[idx]).backward()
                adam.step()
    else:
        raise ValueError(f"unknown probe method {method!r}")
    return LinearProbe(mean.float(), std.float(), w.detach().float(), b.detach().float())


def knn_predict(
    train_z: torch.Tensor,
    train_y: torch.Tensor,
    test_z: torch.Tensor,
    n_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 512,
) -> torch.Tensor:
    """Labels ``(M,)`` of ``test_z`` ``(M, D)`` by a cosine-similarity weighted vote of the top-``k`` neighbours."""
    train_n = F.normalize(train_z.float(), dim=1)
    k = min(k, len(train_n))
    preds = []
    for i in range(0, len(test_z), chunk):
        sim = F.normalize(test_z[i : i + chunk].float(), dim=1) @ train_n.T  # (m, N) cosine similarities
        top_sim, top_idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(sim), n_classes)
        votes.scatter_add_(1, train_y[top_idx], (top_sim / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def knn_accuracy(
    train_z: torch.Tensor,
    train_y: torch.Tensor,
    test_z: torch.Tensor,
    test_y: torch.Tensor,
    n_classes: int,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Top-1 accuracy of ``knn_predict`` (K = 20, T = 0.07 by default)."""
    return float((knn_predict(train_z, train_y, test_z, n_classes, k, temperature) == test_y).float().mean())
