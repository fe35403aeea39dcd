"""The committed dvc.lock and reports/ agree with dvc.yaml and params.yaml (issue 17).

DVC's convention, which this project follows: ``dvc.lock`` and the small ``cache: false`` outputs
(reports/<paper>/*.json, results.csv, results.md) are committed, so that a fresh clone compares
experiments against the last reference run. This runs ``paperops check-lock`` on the checkout
under test (in CI a fresh clone without data): it fails when a paper in ``papers:`` never ran,
when params.yaml or dvc.yaml changed after the run that wrote the lock, when a committed output is
not the one the lock recorded, when a metrics.json lacks the gate's verdict or headline, or when a
results table has no plot with its columns. To fix: ``make run``, then commit ``dvc.lock``,
``data/.gitignore``, ``models/.gitignore`` and ``reports/``. What each failure means is tested on a
project copy in tests/platform/test_tools.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_committed_lock_and_reports_are_coherent() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "components", "check-lock"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
