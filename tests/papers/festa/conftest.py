"""A tiny FeSTA setup shared by the tests: the smoke config, shrunk, and its prepared data."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.config import load_params
from components.contract import RunContext
from components.papers.festa import PAPER
from components.papers.festa.config import FeSTAConfig

ROOT = Path(__file__).resolve().parents[3]


def tiny_cfg(**train) -> FeSTAConfig:
    """The smoke scale with ``train`` overrides (rounds, finetune_rounds, checkpoint_every ...)."""
    cfg = load_params(ROOT / "params.yaml", scale="smoke").config("festa")
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=train)})


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory) -> tuple[FeSTAConfig, RunContext]:
    root = tmp_path_factory.mktemp("festa")
    cfg = tiny_cfg()
    ctx = RunContext("festa", root, seed=cfg.seed)
    PAPER.prepare(cfg, ctx)
    return cfg, ctx
