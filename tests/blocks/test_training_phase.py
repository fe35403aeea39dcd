"""The phased-run resume shared by the phased trainers (noise2score, ccdf, switchable_cyclegan)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from components.blocks.training.phase import start_phased_run
from components.checkpoint import Checkpointer


def test_a_fresh_run_starts_at_zero_with_the_seeded_generator(tmp_path: Path) -> None:
    run = start_phased_run(Checkpointer(tmp_path, "cfg"), seed=7, total=10, log=logging.getLogger("t"), name="p")
    assert (run.first_step, run.done, run.history, run.resumed) == (0, {}, {}, None)
    assert torch.equal(
        torch.rand(4, generator=run.generator), torch.rand(4, generator=torch.Generator().manual_seed(7))
    )


def test_a_resumed_run_continues_the_generator_and_the_state_of_its_checkpoint(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    torch.rand(5, generator=gen)  # the draws of the first 4 steps
    state = {"generator": gen.get_state(), "done": {"a": {"w": torch.ones(2)}}, "history": {"loss/a": [0.0, 1.0]}}
    Checkpointer(tmp_path, "cfg").save(4, {**state, "current": None}, {"x": 1})
    expected = torch.rand(3, generator=gen)

    run = start_phased_run(Checkpointer(tmp_path, "cfg"), seed=3, total=10, log=logging.getLogger("t"), name="p")
    assert run.first_step == 4 and run.resumed is not None
    assert torch.equal(run.done["a"]["w"], torch.ones(2)) and run.history == {"loss/a": [0.0, 1.0]}
    assert torch.equal(torch.rand(3, generator=run.generator), expected)
    # a checkpoint of another config is never resumed
    other = start_phased_run(Checkpointer(tmp_path, "other"), seed=3, total=10, log=logging.getLogger("t"), name="p")
    assert other.first_step == 0 and other.resumed is None
