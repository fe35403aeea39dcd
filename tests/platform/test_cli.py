"""The `paperops` command line: help texts, listing, import-layering rules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.cli import build_parser, main
from components.registry import PAPERS

ROOT = Path(__file__).resolve().parents[2]


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in PAPERS:
        assert name in out


@pytest.mark.parametrize(
    "command", ["validate", "prepare", "train", "evaluate", "register", "run", "status", "serve", "build"]
)
def test_help_explains(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "paper" in text and len(text) > 200


def test_unknown_paper_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["train", "nope"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_console_script_and_module_agree() -> None:
    exe = shutil.which("paperops", path=str(Path(sys.executable).parent))
    assert exe, "the paperops console script is installed"
    a = subprocess.run([exe, "list"], capture_output=True, text=True, check=True).stdout
    b = subprocess.run([sys.executable, "-m", "components", "list"], capture_output=True, text=True, check=True).stdout
    assert a == b
