"""One torch thread for these tests: the nets are tiny, and two threads on the shared 2-core box
were ~30x slower than one (OpenMP threads waiting for a core)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
