"""``paperops build <paper>``: a Bento that carries its model version and the tested pins.

``python -m serving.bento <paper>`` (what ``paperops build`` runs) builds one paper's Bento from the
template ``serving/bentofile.yaml``:

1. **The model, baked in.** The model ``paperops serve`` would serve (the registry's ``champion``,
   ``--version N``, or ``$PAPEROPS_MODEL_DIR``) is copied into BentoML's model store as
   ``<paper>-model:v<registry version>-<content hash>``, labelled with its registry version and
   run, and listed in the bentofile's ``models:``, so the Bento (and ``bentoml export`` /
   ``containerize``) contains it. The bentofile's ``args: {paperops_model: <tag>}`` tells the
   service to load it (serving/common.py ``bento_model``): a Bento never asks a registry at start.
2. **The tested pins, resolved here, without network.** ``requirements.txt`` is the closure of the
   project's dependencies that serving needs (pyproject.toml's, minus the orchestration tools in
   ``NOT_SERVED``), walked through the installed packages' metadata, every name pinned to its
   version in ``constraints.txt`` (the versions the project is tested with; torch 2.14.1, not what
   an index offers today). ``lock_packages: false``: BentoML runs no ``uv pip compile`` (its lock
   resolved torch 2.15.0 from the index); uv is a pinned dependency of the project, so BentoML
   never installs it at build time either.
3. **The container's interface.** The service binds 127.0.0.1 (serving/common.py), on the host and
   under ``bentoml serve <tag>``. The template's ``envs`` sets ``BENTOML_HOST=0.0.0.0`` in the
   image that ``bentoml containerize`` writes (``bentoml serve`` reads ``--host`` from
   ``BENTOML_HOST``), so a container listens on its own interface and ``docker run -p 3000:3000``
   reaches it; ``docker run -e BENTOML_HOST=127.0.0.1`` keeps it on the container's loopback.

Usage: ``paperops build noise2score [--version N]``, then ``bentoml serve noise2score:latest`` or
``bentoml containerize noise2score:latest`` (README, "Packaging a service as a Bento").
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import bentoml
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from serving.common import BENTO_MODEL_ARG, MODEL_FILES
from serving.model_source import ModelUnavailable, ServedModel, resolve

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "serving" / "bentofile.yaml"
BUILD_DIR = ROOT / "build" / "bento"  # the generated bentofile.yaml and requirements.txt, per paper
# Dependencies of the project that a service does not need: the pipeline's orchestration (DVC,
# Prefect, their Dask runner and S3 remote), the registry client and its S3 artifact client (a Bento
# serves its own model) and the build tool itself.
NOT_SERVED = frozenset({"dvc", "dvc-s3", "prefect", "prefect-dask", "mlflow", "boto3", "uv"})


# ----------------------------------------------------------------------------- requirements
def read_constraints(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of a pip constraints file of ``name==version`` lines."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        exact = [s.version for s in req.specifier if s.operator in ("==", "===")]
        if exact:
            pins[canonicalize_name(req.name)] = exact[0]
    return pins


def project_dependencies(pyproject: Path) -> list[str]:
    """The ``[project] dependencies`` of pyproject.toml."""
    import tomllib

    with open(pyproject, "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def _applies(marker: Marker | None, extras: Iterable[str]) -> bool:
    if marker is None:
        return True
    return any(marker.evaluate({"extra": e}) for e in ("", *extras))


def closure(roots: Iterable[str]) -> dict[str, set[str]]:
    """Every distribution the ``roots`` need here, with the extras asked of it: ``{name: extras}``.

    Walks ``Requires-Dist`` of the installed distributions, evaluating markers for this interpreter
    and platform (the build machine runs the tested stack) and for the extras requested.

    Raises:
        LookupError: a needed distribution is not installed (the environment is not the tested one).
    """
    needed: dict[str, set[str]] = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        new_extras = set(req.extras) - needed.get(name, set())
        if name in needed and not new_extras:
            continue
        first = name not in needed
        needed.setdefault(name, set()).update(req.extras)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise LookupError(f"{req.name} is needed to serve but not installed; run `make setup`") from None
        for text in dist.requires or []:
            sub = Requirement(text)
            asked = needed[name] if first else new_extras
            # a requirement under an extra applies only when that extra was asked for
            if sub.marker is not None and "extra" in str(sub.marker):
                if not any(sub.marker.evaluate({"extra": e}) for e in asked):
                    continue
                sub.marker = None
            elif not _applies(sub.marker, asked):
                continue
            todo.append(sub)
    return needed


def pinned_requirements(pyproject: Path, constraints: Path) -> tuple[list[str], list[str]]:
    """``(lines, notes)``: ``name[extras]==version`` for every distribution serving needs, pinned
    from ``constraints``; ``notes`` names any pin taken from the installed version instead."""
    roots = [r for r in project_dependencies(pyproject) if canonicalize_name(Requirement(r).name) not in NOT_SERVED]
    pins = read_constraints(constraints)
    lines, notes = [], []
    for name, extras in sorted(closure(roots).items()):
        if name == "paperops":
            continue
        version = pins.get(name)
        installed = metadata.version(name)
        if version is None:
            version = installed
            notes.append(f"{name}=={installed}: not in {constraints.name}, pinned to the installed version")
        elif version != installed:
            notes.append(f"{name}: {constraints.name} pins {version} but {installed} is installed")
        extra = f"[{','.join(sorted(extras))}]" if extras else ""
        lines.append(f"{name}{extra}=={version}")
    return lines, notes


# -------------------------------------------------------------------------------- the model
def content_hash(folder: Path) -> str:
    """sha256 over the folder's files (relative names and bytes), stable across copies."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def model_tag(served: ServedModel) -> str:
    """``<paper>-model:v<version>-<hash>`` (``:dir-<hash>`` for a folder outside the registry)."""
    digest = content_hash(served.path)[:12]
    name = re.sub(r"[^a-z0-9._-]", "-", served.paper.lower())
    return f"{name}-model:{'v' + served.version if served.version else 'dir'}-{digest}"


def store_model(served: ServedModel) -> str:
    """Copy the exported model into BentoML's model store (once per content) and return its tag."""
    tag = model_tag(served)
    try:
        bentoml.models.get(tag)
        return tag  # the same files are already there
    except bentoml.exceptions.NotFound:
        pass
    labels = {"paper": served.paper, "registry_version": served.version or "unregistered"}
    with bentoml.models.create(
        tag, module="paperops", labels=labels, metadata={"source": served.source, "sha256": tag.rsplit("-", 1)[1]}
    ) as model:
        shutil.copytree(served.path, model.path_of(MODEL_FILES))
    return tag


# ------------------------------------------------------------------------------ bentofile
def bentofile(paper: str, tag: str, served: ServedModel, requirements: Path) -> dict[str, Any]:
    """The template serving/bentofile.yaml filled in for ``paper`` and its model ``tag``."""
    from components.registry import get_paper

    config = yaml.safe_load(TEMPLATE.read_text())
    spec = get_paper(paper)
    config["service"] = f"serving.{paper}:Service"
    config["labels"] = {
        **config.get("labels", {}),
        "paper": paper,
        "arxiv": str(spec.arxiv),
        "model": tag,
        "model_version": served.version or "unregistered",
    }
    config["models"] = [tag]
    config["args"] = {**config.get("args", {}), BENTO_MODEL_ARG: tag}
    config.setdefault("python", {})["requirements_txt"] = str(requirements)
    config["python"]["lock_packages"] = False
    return config


def build(paper: str, version: str | None = None) -> tuple[Any, ServedModel, list[str]]:
    """Build the Bento of ``paper`` (its champion, or registry ``version``); ``(bento, served, notes)``."""
    if version:
        os.environ["PAPEROPS_MODEL_VERSION"] = version
    served = resolve(paper)
    tag = store_model(served)
    lines, notes = pinned_requirements(ROOT / "pyproject.toml", ROOT / "constraints.txt")
    # BentoML takes the requirements file only as a path relative to the working directory; the
    # generated files stay there for reading (git-ignored).
    out = BUILD_DIR / paper
    out.mkdir(parents=True, exist_ok=True)
    requirements = out / "requirements.txt"
    requirements.write_text(
        "# paperops build: the tested pins (constraints.txt) of what serving needs\n" + "\n".join(lines) + "\n"
    )
    config = bentofile(paper, tag, served, requirements.relative_to(ROOT))
    path = out / "bentofile.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with contextlib.chdir(ROOT):
        bento = bentoml.bentos.build_bentofile(str(path), build_ctx=str(ROOT))
    return bento, served, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paperops build", description=__doc__.split("\n\n")[0])
    parser.add_argument("paper")
    parser.add_argument("--version", default=None, help="registry version to bake in (default: the champion)")
    args = parser.parse_args(argv)
    try:
        bento, served, notes = build(args.paper, args.version)
    except ModelUnavailable as exc:
        print(f"paperops: cannot build {args.paper}: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"paperops: note: {note}", file=sys.stderr)
    print(f"paperops: built Bento {bento.tag} serving {served.describe()}")
    print(f"  serve it:        bentoml serve {bento.tag}    (binds 127.0.0.1:3000 on this machine)")
    print(f"  containerize it: bentoml containerize {bento.tag}    (the image binds 0.0.0.0:3000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
