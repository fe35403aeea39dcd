"""The explicit registry of papers: name -> module that exports ``PAPER``.

Adding a paper is one line here, one package under ``components/papers/`` and one section in
params.yaml. Modules are imported lazily so that ``paperops list`` and the config loader do not pay
for every paper's imports.
"""

from __future__ import annotations

import importlib
from functools import cache

from components.contract import Paper

PAPERS: dict[str, str] = {
    "noise2score": "components.papers.noise2score",
    "fractional_lms": "components.papers.fractional_lms",
    "relu_neuron": "components.papers.relu_neuron",
    "ebclr": "components.papers.ebclr",
    "ccdf": "components.papers.ccdf",
    "switchable_cyclegan": "components.papers.switchable_cyclegan",
}


@cache
def get_paper(name: str) -> Paper:
    """Import and return the ``PAPER`` of a registered paper.

    Raises:
        KeyError: for an unknown name, listing the known ones.
    """
    if name not in PAPERS:
        raise KeyError(f"unknown paper {name!r}; known papers: {', '.join(PAPERS)}")
    paper = importlib.import_module(PAPERS[name]).PAPER
    if paper.name != name:
        raise RuntimeError(f"{PAPERS[name]}.PAPER.name is {paper.name!r}, registered as {name!r}")
    return paper
