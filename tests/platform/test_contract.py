"""The contract test: every registered paper, on its smoke config, through the pure steps.

A new paper is done when it is in ``components.registry.PAPERS``, has a params.yaml section, and
passes this file unchanged.
"""

from __future__ import annotations

import fnmatch
import json
import math
from pathlib import Path

import pytest
from pydantic import BaseModel

from components.config import PaperConfig, load_params
from components.contract import Gate, Paper, RunContext
from components.outputs import headline_keys
from components.registry import PAPERS, get_paper

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(PAPERS))
def test_paper_surface(name: str) -> None:
    paper = get_paper(name)
    assert isinstance(paper, Paper) and paper.name == name
    assert paper.arxiv and paper.title
    assert issubclass(paper.config, PaperConfig) and issubclass(paper.config, BaseModel)
    paper.config()  # the paper's own defaults validate
    assert (paper.load is None) == (paper.predict is None)
    module = __import__(PAPERS[name], fromlist=["PAPER"])
    assert paper.arxiv in (module.__doc__ or ""), "the package docstring cites the arXiv id"


@pytest.mark.parametrize("name", list(PAPERS))
def test_smoke_steps(name: str, tmp_path: Path) -> None:
    paper = get_paper(name)
    cfg = load_params(ROOT / "params.yaml", scale="smoke").config(name)
    ctx = RunContext(paper=name, root=tmp_path, seed=cfg.seed)
    paper.prepare(cfg, ctx)
    assert any(ctx.data_dir.iterdir()), "prepare writes data/<paper>"
    paper.train(cfg, ctx)
    assert any(ctx.model_dir.iterdir()), "train exports models/<paper>/model"
    metrics = paper.evaluate(cfg, ctx)
    assert metrics and all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    json.dumps(metrics)
    gate = paper.gate(metrics)
    assert isinstance(gate, Gate) and (gate.passed or gate.reasons), "a failed gate says why"
    # metrics.json (what DVC shows): each declared headline key or pattern names a metric, a few in all
    for pattern in paper.headline:
        assert any(fnmatch.fnmatchcase(k, pattern) for k in metrics), f"headline {pattern!r} matches no metric"
    assert 1 <= len(headline_keys(paper, metrics)) <= 8, headline_keys(paper, metrics)
    if paper.load is not None:
        model = paper.load(ctx.model_dir)
        assert paper.example_input is not None, "a served paper provides an example input"
        out = paper.predict(model, paper.example_input())
        assert out is not None
