"""The registry is the one platform file that names a paper."""

from __future__ import annotations

import re
from pathlib import Path

from components.registry import PAPERS

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = [
    *(p for p in (ROOT / "components").glob("*.py") if p.name != "registry.py"),
    *(ROOT / "components" / "tracking").rglob("*.py"),
    *(ROOT / "flows").rglob("*.py"),
    ROOT / "dvc.yaml",
    ROOT / "Makefile",
    ROOT / "prefect.yaml",
]


def test_no_platform_file_names_a_paper() -> None:
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, PAPERS)) + r")\b")
    found = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for path in PLATFORM
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, "platform code names a paper (only components/registry.py may):\n" + "\n".join(found)
