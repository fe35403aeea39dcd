"""``ctx.progress`` (components/progress.py): percentage lines in logs, the tqdm bar on a terminal.

The unit tests pin the line format and the mode choice; the two end-to-end tests run a real
``paperops prepare`` once with stderr as a pipe (what DVC and a Prefect worker give it) and once on
a pseudo-terminal, and look at the bytes each wrote.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from components import progress as progress_mod
from components.progress import mode, percent_lines, progress

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"(\d+)% \((\d+)/(\d+)\)")


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "paperops.progress"]


def test_lines_every_ten_percent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="paperops.progress")
    assert list(percent_lines(range(200), desc="train")) == list(range(200))
    lines = _lines(caplog)
    assert [int(LINE.search(m).group(1)) for m in lines] == list(range(10, 101, 10)), lines
    assert all(m.startswith("train: ") and "\r" not in m for m in lines)
    assert "left" in lines[0] and "left" not in lines[-1]  # an estimate until the end


def test_resumed_loop_counts_what_was_done(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="paperops.progress")
    list(percent_lines(range(55, 100), total=100, desc="train", initial=55))
    lines = _lines(caplog)
    assert lines[0] == "train: resuming at 55% (55/100)"
    assert [int(LINE.search(m).group(1)) for m in lines[1:]] == [60, 70, 80, 90, 100]


def test_short_and_unsized_loops(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="paperops.progress")
    list(percent_lines(range(3), desc="three"))  # 33%, 66%, 100%: never more lines than items
    assert [int(LINE.search(m).group(1)) for m in _lines(caplog)] == [33, 66, 100]
    caplog.clear()
    list(percent_lines(iter(range(2500)), desc="stream"))  # no len(): a line every 1000 items
    assert _lines(caplog) == [m for m in _lines(caplog) if "done" in m] and len(_lines(caplog)) == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_follows_the_stream_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAPEROPS_NO_PROGRESS", raising=False)
    monkeypatch.delenv("PAPEROPS_PROGRESS", raising=False)
    assert mode(io.StringIO()) == "lines"
    assert mode(_Terminal()) == "bar"
    monkeypatch.setenv("PAPEROPS_PROGRESS", "lines")
    assert mode(_Terminal()) == "lines"
    monkeypatch.setenv("PAPEROPS_NO_PROGRESS", "1")
    assert mode(_Terminal()) == "off"


def test_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("PAPEROPS_NO_PROGRESS", raising=False)
    monkeypatch.delenv("PAPEROPS_PROGRESS", raising=False)
    term = _Terminal()
    monkeypatch.setattr(progress_mod.sys, "stderr", term)
    caplog.set_level(logging.INFO, logger="paperops.progress")
    assert list(progress(range(50), desc="bar")) == list(range(50))
    assert "\r" in term.getvalue() and "50/50" in term.getvalue()
    assert _lines(caplog) == []


# ------------------------------------------------------------------ through the real CLI
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PAPEROPS_NO_PROGRESS", "PAPEROPS_PROGRESS")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    from tests.project_copy import copy_project

    copy = copy_project(tmp_path_factory.mktemp("progress") / "p")
    copy.env = {**_env(), "MLFLOW_TRACKING_URI": copy.env["MLFLOW_TRACKING_URI"]}
    return copy


PREPARE = ["prepare", "noise2score", "--scale", "smoke"]  # a loop over images, a second or two


@pytest.mark.e2e
def test_cli_writes_lines_into_a_log(project) -> None:
    """stderr a pipe (as under DVC and Prefect): percentage lines, no carriage return."""
    proc = subprocess.run(
        [sys.executable, "-m", "components", *PREPARE], cwd=project.path, env=project.env, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    err = proc.stderr.decode()
    assert "\r" not in err
    shown = [line for line in err.splitlines() if "paperops.progress" in line]
    assert shown and "100% (" in shown[-1], err[-2000:]


@pytest.mark.e2e
def test_cli_draws_a_bar_on_a_terminal(project) -> None:
    """stderr a terminal (a pty here): tqdm's bar, redrawn with carriage returns, no lines."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen(
        [sys.executable, "-m", "components", *PREPARE],
        cwd=project.path,
        env=project.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    err = b"".join(chunks).decode(errors="replace")
    assert re.search(r"\r[^\n]*100%\|", err), err[-2000:]  # a bar redrawn in place, full at the end
    assert "paperops.progress" not in err
