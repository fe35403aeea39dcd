"""The git commit a checkout is at and the tracked files that differ from it (MLflow tags, the report)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(root: Path, *args: str, timeout: float = 20) -> str | None:
    """``git <args>``'s output in ``root``; None when git is missing, fails or hangs."""
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def checkout_state(root: Path) -> tuple[str | None, tuple[str, ...] | None]:
    """(HEAD's commit, tracked files changed since it); (None, None) outside a git checkout, and
    None for the files when git could not tell. Untracked files do not count."""
    commit = git(root, "rev-parse", "HEAD")
    if not commit:
        return None, None
    status = git(root, "status", "--porcelain", "--untracked-files=no")
    if status is None:
        return commit, None
    return commit, tuple(line[3:] for line in status.splitlines() if line.strip())
