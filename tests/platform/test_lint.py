"""`make lint`, tool by tool: ruff (lint, then the format check), mypy on components/, import-linter.

Each tool runs from the repository root as the venv installs it (next to ``sys.executable``), with
the configuration in pyproject.toml; one test per tool, so a failure names the tool and prints its
output. The order and the commands are those of the Makefile's ``lint`` target.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

TOOLS = {
    "ruff-check": ["ruff", "check", "."],
    "ruff-format": ["ruff", "format", "--check", "."],
    "mypy": ["mypy"],  # files = ["components"] in [tool.mypy]
    "lint-imports": ["lint-imports"],  # the layering contracts of ARCHITECTURE.md section 4
}


@pytest.mark.parametrize("tool", list(TOOLS))
def test_lint_tool_passes(tool: str) -> None:
    exe, *args = TOOLS[tool]
    path = shutil.which(exe, path=str(BIN))
    assert path, f"{exe} is not installed next to {sys.executable} (the test extra installs it)"
    proc = subprocess.run([path, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{tool} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
