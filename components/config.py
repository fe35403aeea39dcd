"""params.yaml -> validated, resolved config models.

Layout of params.yaml::

    scale: default            # smoke | default | paper
    papers:                   # the papers dvc.yaml runs (foreach), in order
      - noise2score
    noise2score:              # one section per paper
      common: {...}           # overrides at every scale (e.g. a local dataset path)
      smoke: {...}            # tests: seconds
      default: {...}          # a laptop CPU
      paper: {...}            # the paper's own settings (the config defaults), for a GPU

A paper's config is resolved as: the config model's defaults (the paper's values, cited in its
``config.py``) <- ``common`` <- the section of the chosen scale. Every paper and every scale is
validated on load, so an unknown key, a wrong type or an out-of-range value stops any command
before it does work, with an error that names the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCALES = ("smoke", "default", "paper")
Scale = Literal["smoke", "default", "paper"]
SECTION_KEYS = ("common", *SCALES)


class ConfigError(ValueError):
    """params.yaml is wrong; the message names every offending key."""


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PaperConfig(StrictModel):
    """Fields every paper's config has."""

    seed: int = Field(0, ge=0, description="Global seed: data split, init, noise draws.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto picks cuda > mps > cpu."
    )


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in recursively (override wins on leaves)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _format_errors(prefix: str, err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (prefix, *e["loc"]))
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{loc}: {e['msg']}{shown}")
    return lines


def resolve(model: type[BaseModel], section: Mapping[str, Any] | None, scale: str, name: str) -> BaseModel:
    """Build a paper's config for one scale from its params.yaml section.

    Raises:
        ConfigError: naming ``<paper>.<scale>.<key>`` for every bad value.
    """
    section = dict(section or {})
    merged = deep_merge(section.get("common") or {}, section.get(scale) or {})
    try:
        return model.model_validate(merged)
    except ValidationError as err:
        raise ConfigError("\n".join(_format_errors(f"{name}[{scale}]", err))) from None


class Params(BaseModel):
    """The whole of params.yaml, validated."""

    model_config = ConfigDict(frozen=True)

    scale: Scale
    papers: tuple[str, ...]
    sections: dict[str, dict[str, Any]]
    path: Path

    def config(self, paper: str, scale: str | None = None) -> BaseModel:
        """The resolved, validated config of ``paper`` at ``scale`` (default: the file's)."""
        from components.registry import get_paper

        return resolve(get_paper(paper).config, self.sections.get(paper), scale or self.scale, paper)


def load_params(path: str | Path = "params.yaml", scale: str | None = None) -> Params:
    """Read and validate params.yaml: every paper section at every scale.

    Args:
        path: the params file.
        scale: override the file's ``scale`` (the CLI's ``--scale``).

    Raises:
        ConfigError: with one line per problem, each naming its key.
    """
    from components.registry import PAPERS, get_paper

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such params file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")

    problems: list[str] = []
    chosen = scale if scale is not None else raw.get("scale", "default")
    if chosen not in SCALES:
        problems.append(f"scale: must be one of {', '.join(SCALES)} (got {chosen!r})")
    papers = raw.get("papers", list(PAPERS))
    if not isinstance(papers, list) or not all(isinstance(p, str) for p in papers):
        problems.append("papers: must be a list of paper names")
        papers = []
    for p in papers:
        if p not in PAPERS:
            problems.append(f"papers: unknown paper {p!r} (known: {', '.join(PAPERS)})")
    sections: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key in ("scale", "papers"):
            continue
        if key not in PAPERS:
            problems.append(f"{key}: unknown key (expected scale, papers or a paper: {', '.join(PAPERS)})")
            continue
        if value is None:
            value = {}
        if not isinstance(value, dict):
            problems.append(f"{key}: must be a mapping with keys {', '.join(SECTION_KEYS)}")
            continue
        for sub in value:
            if sub not in SECTION_KEYS:
                problems.append(f"{key}.{sub}: unknown key (expected {', '.join(SECTION_KEYS)})")
        sections[key] = value
    if problems:
        raise ConfigError("\n".join(problems))
    for name, section in sections.items():
        model = get_paper(name).config
        for s in SCALES:
            try:
                resolve(model, section, s, name)
            except ConfigError as exc:
                problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return Params(scale=chosen, papers=tuple(papers), sections=sections, path=path.resolve())


def flatten(cfg: BaseModel | Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train.lr": 1e-3, ...}``: a config as flat params for MLflow."""
    data = cfg.model_dump(mode="json") if isinstance(cfg, BaseModel) else dict(cfg)
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out


def config_hash(cfg: BaseModel, exclude: set[str] | None = None) -> str:
    """A short stable hash of a config (checkpoints refuse to resume across configs)."""
    data = cfg.model_dump(mode="json", exclude=exclude)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
