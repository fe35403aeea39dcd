"""The explicit registry of papers and trained blocks: name -> package. The one place in the platform
that names a paper (or a block).

Adding a paper is one line here, one package under ``components/papers/`` and one section in
params.yaml. A package holds ``config.py`` (its config model, the one ``PaperConfig`` subclass
defined there) and exports ``PAPER`` from its ``__init__``. Both are imported lazily and apart:
``config_model`` loads only ``<package>.config`` (pydantic, no torch), so validating params.yaml
does not pay for any paper's heavy imports; ``get_paper`` imports the whole package.

``BLOCKS`` are the shared blocks that are *trained* (or imported) once and used by several papers:
``dvc.yaml``'s ``build-block`` stage builds each into ``models/blocks/<block>``. A block package
holds ``config.py`` (its one ``BlockConfig`` subclass) and exports ``BLOCK`` (``components.contract.Block``).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # components.contract imports torch: not at import time of the registry
    from components.config import BlockConfig, PaperConfig
    from components.contract import Block, Paper

PAPERS: dict[str, str] = {
    "noise2score": "components.papers.noise2score",
    "fractional_lms": "components.papers.fractional_lms",
    "relu_neuron": "components.papers.relu_neuron",
    "ebclr": "components.papers.ebclr",
    "ccdf": "components.papers.ccdf",
    "switchable_cyclegan": "components.papers.switchable_cyclegan",
    "diffusemorph": "components.papers.diffusemorph",
    "diffusionclip": "components.papers.diffusionclip",
    "clipstyler": "components.papers.clipstyler",
    "festa": "components.papers.festa",
}

BLOCKS: dict[str, str] = {
    "clip": "components.blocks.clip",
}


def _known(name: str) -> str:
    if name not in PAPERS:
        raise KeyError(f"unknown paper {name!r}; known papers: {', '.join(PAPERS)}")
    return PAPERS[name]


def _import_submodule_alone(package: str, leaf: str) -> ModuleType:
    """Import ``<package>.<leaf>`` without executing ``<package>/__init__.py``.

    The module is registered in ``sys.modules`` under its full name, so a later import of the
    package (whose ``__init__`` imports it) reuses this very module: one class, not two copies.
    """
    name = f"{package}.{leaf}"
    if name in sys.modules:
        return sys.modules[name]
    parent, _, _ = package.rpartition(".")
    search = importlib.import_module(parent).__path__  # components.papers / components.blocks: docstrings only
    pkg_spec = importlib.machinery.PathFinder.find_spec(package, search)
    if pkg_spec is None or pkg_spec.submodule_search_locations is None:
        raise ModuleNotFoundError(f"no package {package!r}", name=package)
    spec = importlib.machinery.PathFinder.find_spec(name, pkg_spec.submodule_search_locations)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module {name!r}", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _one_subclass(module: ModuleType, base: type) -> type:
    found = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, base) and obj is not base and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise RuntimeError(f"{module.__name__} must define exactly one {base.__name__} subclass (found: {names})")
    return found[0]


@cache
def block_config_model(name: str) -> type[BlockConfig]:
    """The config model of a registered block, importing only ``<package>.config``.

    Raises:
        KeyError: for an unknown name, listing the known ones.
    """
    from components.config import BlockConfig

    if name not in BLOCKS:
        raise KeyError(f"unknown block {name!r}; known blocks: {', '.join(BLOCKS)}")
    return _one_subclass(_import_submodule_alone(BLOCKS[name], "config"), BlockConfig)


@cache
def get_block(name: str) -> Block:
    """Import and return the ``BLOCK`` of a registered block.

    Raises:
        KeyError: for an unknown name. RuntimeError: when ``BLOCK`` disagrees with the registry.
    """
    if name not in BLOCKS:
        raise KeyError(f"unknown block {name!r}; known blocks: {', '.join(BLOCKS)}")
    block = importlib.import_module(BLOCKS[name]).BLOCK
    if block.name != name or block.config is not block_config_model(name):
        raise RuntimeError(f"{BLOCKS[name]}.BLOCK does not match the registry entry {name!r}")
    return block


@cache
def config_model(name: str) -> type[PaperConfig]:
    """The config model of a registered paper, importing only ``<package>.config``.

    Raises:
        KeyError: for an unknown name, listing the known ones.
        RuntimeError: when the module does not define exactly one ``PaperConfig`` subclass.
    """
    from components.config import PaperConfig

    module = _import_submodule_alone(_known(name), "config")
    found = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, PaperConfig)
        and obj is not PaperConfig
        and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise RuntimeError(f"{module.__name__} must define exactly one PaperConfig subclass (found: {names})")
    return found[0]


@cache
def get_paper(name: str) -> Paper:
    """Import and return the ``PAPER`` of a registered paper.

    Raises:
        KeyError: for an unknown name, listing the known ones.
        RuntimeError: when ``PAPER`` disagrees with the registry (name or config model).
    """
    package = _known(name)
    module = importlib.import_module(package)
    if not hasattr(module, "config") and f"{package}.config" in sys.modules:
        vars(module)["config"] = sys.modules[f"{package}.config"]  # bind the submodule loaded alone
    paper = module.PAPER
    if paper.name != name:
        raise RuntimeError(f"{package}.PAPER.name is {paper.name!r}, registered as {name!r}")
    if paper.config is not config_model(name):
        raise RuntimeError(f"{package}.PAPER.config is not the config model of {package}.config")
    return paper
