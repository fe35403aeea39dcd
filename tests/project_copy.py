"""A throw-away copy of the project as a fresh git repository, for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PAPEROPS_NO_PROGRESS": "1",
    # a smoke stage can end within the default 2 s sampling interval and then log no system metric
    "PAPEROPS_SYSMETRICS_S": "0.5",
    "GIT_AUTHOR_NAME": "paperops-tests",
    "GIT_AUTHOR_EMAIL": "tests@paperops.invalid",
    "GIT_COMMITTER_NAME": "paperops-tests",
    "GIT_COMMITTER_EMAIL": "tests@paperops.invalid",
}
os.environ.update({k: v for k, v in QUIET_ENV.items() if k.startswith(("DO_NOT", "DVC", "BENTO", "PREFECT"))})


@dataclass
class ProjectCopy:
    """A project copy: its path and the environment its commands run with."""

    path: Path
    env: dict[str, str]

    def run(self, *cmd: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run a command in the copy; with ``check`` a failure raises with its output."""
        proc = subprocess.run(cmd, cwd=self.path, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc


def copy_project(dest: Path, scale: str = "smoke") -> ProjectCopy:
    """Copy the project's working tree into ``dest`` as a fresh git repo at ``scale``."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = ROOT / rel
        output = rel.startswith(("data/", "models/", "reports/")) and rel != "models/blocks/README.md"
        if src.is_file() and not output:  # models/blocks/README.md keeps the folder validate depends on
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params = dest / "params.yaml"
    params.write_text(re.sub(r"(?m)^scale:.*$", f"scale: {scale}", params.read_text()))
    (dest / "dvc.lock").unlink(missing_ok=True)
    project = ProjectCopy(dest, project_env(dest))
    project.run("git", "init", "-q", "-b", "main")
    project.run("dvc", "remote", "modify", "--local", "local", "url", str(dest.parent / "dvc-remote"))
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "-m", "test copy")
    return project


def project_env(dest: Path) -> dict[str, str]:
    """The environment of a copy's commands: this interpreter's tools, its own MLflow store and Prefect home."""
    return {
        **os.environ,
        **QUIET_ENV,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{dest / 'mlflow.db'}",
        "PREFECT_HOME": str(dest / ".prefect"),
    }


def duplicate(src: Path, dest: Path) -> ProjectCopy:
    """A copy of the copy ``src`` (after its pipeline ran) at ``dest``, independent of it.

    Everything is copied (git repository, DVC cache, outputs, MLflow store, Prefect home); the two
    absolute paths a copy holds are pointed at ``dest``: the DVC remote (``.dvc/config.local``) and
    the MLflow store's artifact locations (``components.tracking.store.relocate``, what paperops
    does for a moved checkout).
    """
    from components.tracking.store import relocate

    shutil.copytree(src, dest, symlinks=True)
    if (src.parent / "dvc-remote").is_dir():
        shutil.copytree(src.parent / "dvc-remote", dest.parent / "dvc-remote", symlinks=True)
    project = ProjectCopy(dest, project_env(dest))
    project.run("dvc", "remote", "modify", "--local", "local", "url", str(dest.parent / "dvc-remote"))
    relocate(dest, project.env["MLFLOW_TRACKING_URI"])
    return project
