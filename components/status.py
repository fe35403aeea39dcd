"""``paperops status``: one line per paper after a pipeline run (what ``make run`` prints last).

Each line says whether the paper's last registration passed its gate (or why not) and which
registry version ``paperops serve <paper>`` would serve (the alias ``champion``). The gate's
verdict comes from ``reports/<paper>/registration.json`` (the register stage's output); the served
version from the MLflow registry, through ``components.tracking``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from components.config import Params


@dataclass(frozen=True)
class PaperStatus:
    """Where one paper stands: its last registration and the version served."""

    paper: str
    registered: str | None  # version of the last registration, None before the first
    passed: bool | None  # its gate verdict
    reasons: tuple[str, ...]
    scale: str | None  # scale of that registration
    served: str | None  # version holding the alias champion
    moved: bool | None = None  # whether that registration moved the alias (not in a DVC experiment)
    experiment: str | None = None  # the DVC experiment it ran in, if any

    def line(self, current_scale: str) -> str:
        """``<paper>  gate passed (v3, scale default)  serving v3``: one line, no wrapping."""
        if self.registered is None:
            verdict = "not registered yet (run `dvc repro`)"
        elif self.passed and self.moved is False:
            why = f"DVC experiment {self.experiment}" if self.experiment else "not promoted"
            verdict = f"gate passed (v{self.registered}; {why}: champion not moved)"
        elif self.passed:
            verdict = f"gate passed (v{self.registered})"
        else:
            verdict = f"gate FAILED (v{self.registered}): {'; '.join(self.reasons) or 'no reason given'}"
        if self.scale and self.scale != current_scale:
            verdict += f" [registered at scale {self.scale}, params.yaml says {current_scale}]"
        if self.served is None:
            served = "nothing served (no champion yet)"
        elif self.served == self.registered:
            served = f"serving v{self.served}"
        else:
            served = f"serving v{self.served} (an earlier champion)"
        return f"{self.paper:16s} {verdict} | {served}"


def paper_status(root: Path, paper: str) -> PaperStatus:
    """Read ``reports/<paper>/registration.json`` and the registry's champion of ``paper``."""
    from components import tracking  # imports mlflow

    path = Path(root) / "reports" / paper / "registration.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    uri = tracking.tracking_uri(Path(root))
    no_store = uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file()
    # records before the split into gate_passed / champion_moved had one key, "champion", for both
    passed = record.get("gate_passed", record.get("champion"))
    moved = record.get("champion_moved", record.get("champion"))
    return PaperStatus(
        paper=paper,
        registered=str(record["version"]) if "version" in record else None,
        passed=bool(passed) if passed is not None else None,
        reasons=tuple(record.get("reasons") or ()),
        scale=record.get("scale"),
        served=None if no_store else tracking.champion_version(Path(root), paper),  # never create a store
        moved=bool(moved) if moved is not None else None,
        experiment=record.get("experiment"),
    )


def summary(root: Path, params: Params) -> list[str]:
    """One line per paper listed in params.yaml, in its order."""
    return [paper_status(root, p).line(params.scale) for p in params.papers]
