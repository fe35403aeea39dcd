"""What the report says about each paper, read from what the pipeline left in a checkout.

Sources, per paper (nothing is computed here that the pipeline did not write):
- ``components/report/claims.yaml``: the claim, the paper's number, which metric is ours and which
  classical baseline it is compared with (the one place a paper's report metadata lives);
- ``reports/<p>/metrics.json`` and ``all_metrics.json``: the values (metrics.json wins on a clash);
- ``reports/<p>/registration.json``: gate verdict and reasons, registered version, champion moved,
  the register stage's MLflow run id;
- ``dvc.lock``: the md5 of ``data/<p>``, ``models/<p>`` (and the blocks the paper's stages read);
- git: the commit of the checkout and whether tracked files differ from it;
- the MLflow store (``components.tracking``): the experiment id of that run, for its UI link.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from components.gitstate import checkout_state

CLAIMS = Path(__file__).with_name("claims.yaml")
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"  # what `make mlflow-ui` serves
CLAIM_KEYS = {"claim", "paper_number", "ours", "baseline", "note"}
BASELINE_KEYS = {"name", "metric", "diff", "se", "better"}
PAGE_FILES = ("results.md", "metrics.json")  # a paper's outputs the report links to


class ClaimsError(ValueError):
    """claims.yaml is malformed (an unknown key, a missing field)."""


@dataclass(frozen=True)
class Comparison:
    """Ours against the classical baseline: the paired difference and its standard error."""

    name: str
    value: float | None  # the baseline's own value, when claims.yaml names its metric
    diff: float | None  # the paired difference as recorded (see ``better``)
    se: float | None
    better: str  # "higher" | "lower": which sign of diff favours ours
    diff_key: str

    @property
    def z(self) -> float | None:
        """diff / se, signed so that a positive value favours ours (None without both)."""
        if self.diff is None or not self.se or not math.isfinite(self.se) or self.se <= 0:
            return None
        return (self.diff if self.better == "higher" else -self.diff) / self.se

    @property
    def verdict(self) -> str:
        """``ours better/worse beyond 2 se`` or ``within 2 se``; empty without a standard error."""
        z = self.z
        if z is None:
            return ""
        if abs(z) <= 2:
            return "within 2 se"
        return "ours better beyond 2 se" if z > 0 else "ours worse beyond 2 se"


@dataclass(frozen=True)
class PaperEntry:
    """One paper's section of the report."""

    paper: str
    title: str | None
    arxiv: str | None
    claim: str | None  # None: no entry in claims.yaml
    paper_number: dict[str, str] | None
    ours_label: str | None
    ours_key: str | None
    ours: float | None
    baseline: Comparison | None
    note: str | None
    gate_passed: bool | None  # None: never registered
    reasons: tuple[str, ...]
    version: str | None
    champion_moved: bool | None
    scale: str | None
    run_id: str | None
    experiment_id: str | None
    run_url: str | None
    data_hashes: dict[str, str]  # dvc.lock path -> md5
    figures: tuple[str, ...]  # paths relative to reports/
    files: tuple[str, ...] = ()  # results.md, metrics.json where written, relative to reports/
    headline: dict[str, float] = field(default_factory=dict)  # metrics.json as written
    missing: tuple[str, ...] = ()  # metric keys named in claims.yaml but absent from the outputs


@dataclass(frozen=True)
class Provenance:
    """The checkout the report was written from."""

    commit: str | None
    dirty: bool | None
    dirty_files: tuple[str, ...]
    tracking_uri: str
    mlflow_ui: str


def load_claims(path: Path = CLAIMS) -> dict[str, dict[str, Any]]:
    """claims.yaml as a dict keyed by paper; unknown keys are errors (a typo must not vanish)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ClaimsError(f"{path}: a mapping of paper name to entry expected")
    for paper, entry in data.items():
        if not isinstance(entry, dict) or not entry.get("claim"):
            raise ClaimsError(f"{path}: {paper}: `claim:` missing")
        if unknown := set(entry) - CLAIM_KEYS:
            raise ClaimsError(f"{path}: {paper}: unknown keys {sorted(unknown)}")
        base = entry.get("baseline")
        if base is not None:
            if unknown := set(base) - BASELINE_KEYS:
                raise ClaimsError(f"{path}: {paper}.baseline: unknown keys {sorted(unknown)}")
            if not base.get("name") or base.get("better", "higher") not in ("higher", "lower"):
                raise ClaimsError(f"{path}: {paper}.baseline: needs `name` and better: higher|lower")
    return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def provenance(root: Path, tracking_uri: str, mlflow_ui: str) -> Provenance:
    """The commit of ``root`` and the tracked files that differ from it (untracked ones do not count)."""
    commit, changed = checkout_state(root)
    dirty = None if changed is None else bool(changed)
    return Provenance(commit, dirty, changed or (), tracking_uri, mlflow_ui.rstrip("/"))


def lock_hashes(root: Path) -> dict[str, dict[str, str]]:
    """Per DVC stage of dvc.lock, ``{out or dep path: md5}``: what each stage produced and read."""
    lock = Path(root) / "dvc.lock"
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    except (OSError, yaml.YAMLError):
        return {}
    found: dict[str, dict[str, str]] = {}
    for name, stage in stages.items():
        entries = [*stage.get("outs", []), *stage.get("deps", [])]
        found[name] = {e["path"]: e["md5"] for e in entries if isinstance(e, dict) and "md5" in e and "path" in e}
    return found


def data_hashes(paper: str, locks: dict[str, dict[str, str]]) -> dict[str, str]:
    """The md5 of ``data/<p>`` and ``models/<p>`` (outputs of its prepare / train stages) and of
    ``models/blocks`` as its validate stage read it."""
    wanted = {
        f"prepare@{paper}": f"data/{paper}",
        f"train@{paper}": f"models/{paper}",
        f"validate@{paper}": "models/blocks",
    }
    return {path: locks[stage][path] for stage, path in wanted.items() if path in locks.get(stage, {})}


def _value(metrics: dict[str, Any], key: str | None) -> float | None:
    if not key or key not in metrics:
        return None
    try:
        value = float(metrics[key])
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _se(metrics: dict[str, Any], keys: str | list[str] | None) -> float | None:
    names = [keys] if isinstance(keys, str) else list(keys or [])
    values = [_value(metrics, k) for k in names]
    if not names or any(v is None for v in values):
        return None
    return math.sqrt(sum(v * v for v in values if v is not None))


def run_url(base: str, experiment_id: str | None, run_id: str | None) -> str | None:
    """The MLflow UI page of a run: ``<base>/#/experiments/<exp>/runs/<run>``."""
    if not run_id or not experiment_id:
        return None
    return f"{base.rstrip('/')}/#/experiments/{quote(experiment_id, safe='')}/runs/{quote(run_id, safe='')}"


def figures_of(reports: Path, paper: str) -> tuple[str, ...]:
    """The PNG figures the paper's evaluate stage wrote, relative to ``reports/``."""
    folder = reports / paper / "figures"
    if not folder.is_dir():
        return ()
    return tuple(f"{paper}/figures/{p.name}" for p in sorted(folder.glob("*.png")) if p.is_file())


def paper_entry(
    root: Path,
    paper: str,
    claims: dict[str, dict[str, Any]],
    locks: dict[str, dict[str, str]],
    experiment_ids: dict[str, str],
    mlflow_ui: str,
    meta: tuple[str | None, str | None] = (None, None),
) -> PaperEntry:
    """Everything the report shows for ``paper``; missing pieces are None, never an error."""
    reports = Path(root) / "reports"
    headline = _read_json(reports / paper / "metrics.json")
    metrics = {**_read_json(reports / paper / "all_metrics.json"), **headline}
    record = _read_json(reports / paper / "registration.json")
    entry = claims.get(paper)
    missing: list[str] = []

    def get(key: str | None) -> float | None:
        value = _value(metrics, key)
        if key and value is None:
            missing.append(key)
        return value

    baseline = None
    if entry and entry.get("baseline"):
        base = entry["baseline"]
        se_keys = base.get("se")
        baseline = Comparison(
            name=str(base["name"]),
            value=get(base.get("metric")),
            diff=get(base.get("diff")),
            se=_se(metrics, se_keys),
            better=str(base.get("better", "higher")),
            diff_key=str(base.get("diff") or ""),
        )
        for k in [se_keys] if isinstance(se_keys, str) else list(se_keys or []):
            if _value(metrics, k) is None:
                missing.append(k)
    ours = (entry or {}).get("ours") or {}
    passed = record.get("gate_passed", record.get("champion"))
    if passed is None and "gate_passed" in headline:
        passed = bool(headline["gate_passed"])
    run_id = record.get("run_id")
    exp = experiment_ids.get(str(run_id)) if run_id else None
    return PaperEntry(
        paper=paper,
        title=meta[0],
        arxiv=meta[1],
        claim=" ".join(str(entry["claim"]).split()) if entry else None,
        paper_number=entry.get("paper_number") if entry else None,
        ours_label=ours.get("label"),
        ours_key=ours.get("metric"),
        ours=get(ours.get("metric")),
        baseline=baseline,
        note=" ".join(str(entry["note"]).split()) if entry and entry.get("note") else None,
        gate_passed=None if passed is None else bool(passed),
        reasons=tuple(str(r) for r in record.get("reasons") or ()),
        version=str(record["version"]) if "version" in record else None,
        champion_moved=record.get("champion_moved"),
        scale=record.get("scale"),
        run_id=str(run_id) if run_id else None,
        experiment_id=exp,
        run_url=run_url(mlflow_ui, exp, str(run_id) if run_id else None),
        data_hashes=data_hashes(paper, locks),
        figures=figures_of(reports, paper),
        files=tuple(f"{paper}/{n}" for n in PAGE_FILES if (reports / paper / n).is_file()),
        headline={k: float(v) for k, v in headline.items() if isinstance(v, int | float)},
        missing=tuple(missing),
    )
