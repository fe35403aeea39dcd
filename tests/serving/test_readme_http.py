"""Every ``curl`` line of README.md, run as written against a real server of its paper.

A line belongs to the served paper whose ``serving/<paper>.py`` the README names last before the
line's code block. The command runs from a folder holding ``examples/`` (the project's), with only the
URL's ``http://127.0.0.1:3000`` replaced by the test server's and ``-sS --fail-with-body`` added,
so a 4xx/5xx fails the test with the server's message. Every served paper (a ``serving/<p>.py``
with a ``Service``) must have a line for each of its endpoints: a new service adds its own.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BASE = "http://127.0.0.1:3000"


def served_papers() -> list[str]:
    return sorted(p.stem for p in (ROOT / "serving").glob("*.py") if re.search(r"^Service = ", p.read_text(), re.M))


def readme_commands() -> list[tuple[str, str]]:
    """``(paper, command)`` for every ``curl`` line in a ``bash`` block of README.md."""
    text = README.read_text()
    papers = set(served_papers())
    found = []
    for block in re.finditer(r"```bash\n(.*?)```", text, re.S):
        named = [p for p in re.findall(r"serving/(\w+)\.py", text[: block.start()]) if p in papers]
        for line in block.group(1).replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["curl"]:
                assert named, f"README: a curl line before any serving/<paper>.py is named: {line}"
                found.append((named[-1], shlex.join(words)))
    return found


COMMANDS = readme_commands()


def test_every_endpoint_of_every_service_has_a_readme_example() -> None:
    missing = []
    for paper in served_papers():
        service = importlib.import_module(f"serving.{paper}").Service
        used = {w for p, c in COMMANDS if p == paper for w in shlex.split(c) if w.startswith(BASE)}
        for api in service.apis.values():
            if f"{BASE}{api.route}" not in used:
                missing.append(f"{paper} {api.route}")
    assert not missing, f"endpoints without a curl line in README.md: {', '.join(missing)}"


def _check_output(path: Path) -> None:
    data = path.read_bytes()
    if path.suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), data[:40]
    elif path.suffix == ".npy":
        assert data.startswith(b"\x93NUMPY"), data[:40]
    else:
        json.loads(data)


@pytest.mark.parametrize(("paper", "command"), COMMANDS, ids=[f"{p}:{c.split(BASE)[-1][:40]}" for p, c in COMMANDS])
def test_readme_command(served, paper: str, command: str, tmp_path: Path) -> None:
    url = served(paper)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    args = [w.replace(BASE, url) for w in shlex.split(command)]
    proc = subprocess.run(
        [*args, "-sS", "--fail-with-body"], cwd=tmp_path, capture_output=True, timeout=180, check=False
    )
    assert proc.returncode == 0, f"{command}\nexit {proc.returncode}: {proc.stderr.decode()} {proc.stdout[:500]!r}"
    if "-o" in args:
        _check_output(tmp_path / args[args.index("-o") + 1])
    else:
        body = json.loads(proc.stdout)
        assert isinstance(body, dict) and "error" not in body, body
