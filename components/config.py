"""params.yaml -> validated, resolved config models.

Layout of params.yaml (``scale``, ``papers`` and a section for every listed paper are required)::

    scale: default            # smoke | default | paper
    papers:                   # the papers dvc.yaml runs (foreach), in order, each once
      - <paper>
    blocks:                   # trained shared blocks dvc.yaml builds first (foreach): name -> section
      <block>: {common: {...}, smoke: {...}, default: {...}, paper: {...}}
    <paper>:                  # one section per paper (a mapping; ``{}`` for all defaults)
      common: {...}           # overrides at every scale (e.g. a local dataset path)
      smoke: {...}            # tests: seconds
      default: {...}          # a laptop CPU
      paper: {...}            # the paper's own settings (the config defaults), for a GPU

A paper's config is resolved as: the config model's defaults (the paper's values, cited in its
``config.py``) <- ``common`` <- the section of the chosen scale. Every paper and every scale is
validated on load, so an unknown key, a key given twice, a wrong type (strictly: ``true`` is not an
int, ``"3"`` is not a number; an int is a valid float) or an out-of-range value stops any command
before it does work, with an error that names the key. Loading imports only each paper's
``config`` module (``components.registry.config_model``), not the paper's heavy dependencies.

A block's section (``blocks: <block>:``, a ``components.registry.BLOCKS`` entry such as the trained
text-image model) is resolved and validated the same way, with the block's ``BlockConfig``. A paper
declares the blocks it uses in its config model (``USES_BLOCKS``); every listed paper's blocks must
have a section under ``blocks:``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCALES = ("smoke", "default", "paper")
Scale = Literal["smoke", "default", "paper"]
M = TypeVar("M", bound=BaseModel)
SECTION_KEYS = ("common", *SCALES)
TOP_KEYS = ("scale", "papers", "blocks")


class ConfigError(ValueError):
    """params.yaml is wrong; the message names every offending key."""


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable.

    params.yaml is validated in pydantic's strict JSON mode (see ``resolve``): no bool for an int,
    no string for a number, no float for an int; an int is accepted for a float and a list for a
    tuple. Python code that builds configs directly keeps pydantic's default (lax) mode.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class PaperConfig(StrictModel):
    """Fields every paper's config has."""

    USES_BLOCKS: ClassVar[tuple[str, ...]] = ()
    """Trained shared blocks (``components.registry.BLOCKS``) the paper reads from ``models/blocks/<b>``:
    its ``validate`` stage records their fingerprints, so DVC reruns the paper when one is rebuilt."""

    seed: int = Field(0, ge=0, description="Global seed: data split, init, noise draws.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="auto picks cuda > mps > cpu.")


class BlockConfig(PaperConfig):
    """Fields every trained block's config has (seed and device, as a paper's)."""


# YAML 1.2 floats: PyYAML (YAML 1.1) reads ``1e-3`` (no dot) as a string; DVC's YAML 1.2 parser
# reads it as a number, and so do we, so that strict validation accepts ``lr: 1e-3``.
_FLOAT_12 = re.compile(r"^[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)[eE][-+]?\d+$")


class ParamsLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (naming key and lines)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor`` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader raises its own error below
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} given twice in one mapping (lines {first} and {line}); the later "
                    "one would silently win",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


ParamsLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def read_yaml(path: Path) -> Any:
    """Parse a params file with ``ParamsLoader``.

    Raises:
        ConfigError: for invalid YAML or a duplicate key, with the line.
    """
    try:
        return yaml.load(path.read_text(), Loader=ParamsLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


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


def _not_json(value: Any, loc: str) -> str | None:
    """The key of the first value JSON cannot carry (a YAML date, binary, a non-string key)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{loc}.{k!r}: keys must be strings"
            found = _not_json(v, f"{loc}.{k}")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _not_json(v, f"{loc}.{i}")
            if found:
                return found
        return None
    if value is None or isinstance(value, str | bool | int) or (isinstance(value, float) and not math.isnan(value)):
        return None
    if isinstance(value, float):
        return f"{loc}: NaN is not a valid setting"
    return f"{loc}: {type(value).__name__} values are not allowed (got {value!r}); quote it to make it a string"


def resolve(model: type[M], section: Mapping[str, Any] | None, scale: str, name: str) -> M:
    """Build a paper's config for one scale from its params.yaml section (strict types).

    Raises:
        ConfigError: naming ``<paper>[<scale>].<key>`` for every bad value.
    """
    section = dict(section or {})
    merged = deep_merge(section.get("common") or {}, section.get(scale) or {})
    prefix = f"{name}[{scale}]"
    bad = _not_json(merged, prefix)
    if bad:
        raise ConfigError(bad)
    try:
        # strict JSON mode: no bool -> int, no str -> number; int -> float and list -> tuple are fine
        return model.model_validate_json(json.dumps(merged, allow_nan=True), strict=True)
    except ValidationError as err:
        raise ConfigError("\n".join(_format_errors(prefix, err))) from None


class Params(BaseModel):
    """The whole of params.yaml, validated.

    params.yaml itself carries no comments: ``dvc exp run -S key=value`` rewrites the file and
    drops them. What each key means is documented here and in each paper's config model
    (``components/papers/<paper>/config.py``), where the defaults cite the paper.
    """

    model_config = ConfigDict(frozen=True)

    scale: Scale = Field(
        description="Which scale every stage runs at: smoke (tests, seconds), default (a laptop CPU) or paper "
        "(the paper's own settings, for a GPU). Switch with `dvc exp run -S scale=paper`, by editing params.yaml, "
        "or per command with `paperops <stage> <paper> --scale S`."
    )
    papers: tuple[str, ...] = Field(
        description="The papers `dvc repro` and the Prefect flows run, in order, each once; each must be registered "
        "(components/registry.py) and have a section."
    )
    sections: dict[str, dict[str, Any]] = Field(
        description="One section per paper, `<paper>: {common: {...}, smoke: {...}, default: {...}, paper: {...}}`. "
        "A paper's config = its config model's defaults (the paper's values, cited in its config.py) <- `common` <- "
        "the section of the chosen scale. Unknown keys, wrong types and out-of-range values stop every command "
        "before it does any work."
    )
    path: Path = Field(description="The params file read.")
    blocks: dict[str, dict[str, Any]] = Field(
        default={},
        description="One section per trained shared block (components/registry.py BLOCKS), `<block>: {common, smoke, "
        "default, paper}` like a paper's; built first by `dvc repro` (stage build-block@<block>) and read by the "
        "papers that declare it.",
    )

    def config(self, paper: str, scale: str | None = None) -> PaperConfig:
        """The resolved, validated config of ``paper`` at ``scale`` (default: the file's).

        Raises:
            ConfigError: when params.yaml has no section for ``paper``.
        """
        from components.registry import config_model

        if paper not in self.sections:
            raise ConfigError(f"{paper}: no section in {self.path.name} (add `{paper}: {{}}` for the defaults)")
        return resolve(config_model(paper), self.sections[paper], scale or self.scale, paper)

    def block_config(self, block: str, scale: str | None = None) -> BlockConfig:
        """The resolved, validated config of the trained block ``block`` (its ``blocks:`` section).

        Raises:
            ConfigError: when ``blocks:`` has no section for ``block``.
        """
        from components.registry import block_config_model

        if block not in self.blocks:
            raise ConfigError(f"blocks.{block}: no section in {self.path.name} (add `{block}: {{}}` under blocks:)")
        return resolve(block_config_model(block), self.blocks[block], scale or self.scale, f"blocks.{block}")


def _check_top(raw: dict[str, Any], scale: str | None, known: Mapping[str, str]) -> tuple[str, list[str], list[str]]:
    """Validate ``scale`` and ``papers``: ``(scale, papers, problems)``."""
    problems: list[str] = []
    if "scale" not in raw:
        problems.append(f"scale: missing (required; one of {', '.join(SCALES)})")
    chosen = scale if scale is not None else raw.get("scale")
    if "scale" in raw and raw["scale"] not in SCALES:
        problems.append(f"scale: must be one of {', '.join(SCALES)} (got {raw['scale']!r})")
    elif scale is not None and scale not in SCALES:
        problems.append(f"--scale: must be one of {', '.join(SCALES)} (got {scale!r})")
    papers: list[str] = []
    if "papers" not in raw:
        problems.append("papers: missing (required: the list of papers dvc.yaml runs)")
    elif not isinstance(raw["papers"], list) or not all(isinstance(p, str) for p in raw["papers"]):
        problems.append(f"papers: must be a list of paper names (got {raw['papers']!r})")
    else:
        papers = raw["papers"]
        for p in sorted({p for p in papers if papers.count(p) > 1}):
            problems.append(f"papers: {p!r} listed {papers.count(p)} times (list each paper once)")
        for p in papers:
            if p not in known:
                problems.append(f"papers: unknown paper {p!r} (known: {', '.join(known)})")
            elif p not in raw:
                problems.append(f"{p}: section missing (papers: lists it); add `{p}: {{}}` for the defaults")
    return str(chosen), papers, problems


def _check_blocks(raw: dict[str, Any], known: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``blocks:``: a mapping of registered block names to sections (absent: none; dvc.yaml's
    ``build-block`` stage iterates it, so a params file that ``dvc repro`` reads keeps ``blocks: {}``)."""
    if "blocks" not in raw:  # dvc.yaml's build-block stage iterates it: the project's params.yaml has it
        return {}, []
    value = raw["blocks"]
    if not isinstance(value, dict):
        got = "null (an empty value)" if value is None else repr(value)
        return {}, [f"blocks: must be a mapping of block names to sections (got {got}); `blocks: {{}}` for none"]
    sections, problems = {}, []
    for name, section in value.items():
        if name not in known:
            problems.append(f"blocks.{name}: unknown block (known: {', '.join(known)})")
            continue
        found = _check_section(f"blocks.{name}", section)
        problems.extend(found)
        if not found:
            sections[name] = section
    return sections, problems


def _check_section(key: str, value: Any) -> list[str]:
    """Shape of one paper section: a mapping of ``common``/scales to mappings."""
    expected = ", ".join(SECTION_KEYS)
    if not isinstance(value, dict):
        got = "null (an empty value)" if value is None else repr(value)
        return [f"{key}: must be a mapping with keys {expected} (got {got}); use `{key}: {{}}` for the defaults"]
    problems = []
    for sub, body in value.items():
        if sub not in SECTION_KEYS:
            problems.append(f"{key}.{sub}: unknown key (expected {expected})")
        elif not isinstance(body, dict):
            got = "null (an empty value)" if body is None else repr(body)
            problems.append(f"{key}.{sub}: must be a mapping (got {got}); use `{sub}: {{}}` for none")
    return problems


def load_params(path: str | Path = "params.yaml", scale: str | None = None) -> Params:
    """Read and validate params.yaml: every paper section at every scale.

    Imports only the ``config`` module of each paper that has a section (not the paper itself).

    Args:
        path: the params file.
        scale: override the file's ``scale`` (the CLI's ``--scale``).

    Raises:
        ConfigError: with one line per problem, each naming its key.
    """
    from components.registry import BLOCKS, PAPERS, block_config_model, config_model

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such params file")
    raw = read_yaml(path)
    if raw is None:
        raise ConfigError(f"{path}: empty (it needs scale, papers and one section per paper)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping (got {type(raw).__name__})")

    chosen, papers, problems = _check_top(raw, scale, PAPERS)
    blocks, block_problems = _check_blocks(raw, BLOCKS)
    problems += block_problems
    sections: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key in TOP_KEYS:
            continue
        if key not in PAPERS:
            problems.append(f"{key}: unknown key (expected scale, papers, blocks or a paper: {', '.join(PAPERS)})")
            continue
        found = _check_section(str(key), value)
        problems.extend(found)
        if not found:
            sections[key] = value
    if problems:
        raise ConfigError("\n".join(problems))
    for name, section in sections.items():
        model = config_model(name)
        for s in SCALES:
            try:
                resolve(model, section, s, name)
            except ConfigError as exc:
                problems.append(str(exc))
        if name in papers:
            for block in model.USES_BLOCKS:
                if block not in blocks:
                    problems.append(f"{name}: uses the trained block {block!r}; add a `{block}:` section under blocks:")
    for name, section in blocks.items():
        block_model = block_config_model(name)
        for s in SCALES:
            try:
                resolve(block_model, section, s, f"blocks.{name}")
            except ConfigError as exc:
                problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    # no problems: _check_top found the chosen scale among SCALES
    return Params(
        scale=cast(Scale, chosen), papers=tuple(papers), sections=sections, path=path.resolve(), blocks=blocks
    )


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
