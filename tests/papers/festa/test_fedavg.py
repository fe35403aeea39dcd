"""FedAvg against a hand computation; flat weight vectors round-trip without sharing storage."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from components.papers.festa.fedavg import fedavg, flatten, n_params, unflatten


def test_fedavg_is_the_sample_weighted_mean() -> None:
    a, b, c = torch.tensor([1.0, 2.0, -4.0]), torch.tensor([3.0, 6.0, 0.0]), torch.tensor([0.0, 0.0, 8.0])
    # n = 1 + 3 + 4 = 8: (1*a + 3*b + 4*c) / 8 by hand
    expect = torch.tensor([(1 + 9 + 0) / 8, (2 + 18 + 0) / 8, (-4 + 0 + 32) / 8])
    assert torch.allclose(fedavg([a, b, c], [1, 3, 4]), expect)
    assert torch.equal(fedavg([a, b], [5, 5]), (a + b) / 2)
    assert torch.equal(fedavg([a], [7]), a)
    for args in (([], []), ([a, b], [1]), ([a, torch.zeros(2)], [1, 1]), ([a, b], [1, 0])):
        with pytest.raises(ValueError):
            fedavg(*args)


def test_flatten_unflatten_round_trip_without_shared_storage() -> None:
    torch.manual_seed(0)
    m1 = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    m2 = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    v = flatten(m1)
    assert v.shape == (n_params(m1),) == (3 * 4 + 4 + 4 * 2 + 2,)
    unflatten(v, m2)
    assert torch.equal(flatten(m2), v)
    with torch.no_grad():
        m2[0].weight.add_(1.0)  # loading one vector into two modules must not tie them
    assert torch.equal(flatten(m1), v)
    with pytest.raises(ValueError):
        unflatten(v[:-1], m2)
