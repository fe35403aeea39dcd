"""Papers in parallel: one checkout per paper, fanned out on a Dask task runner, fanned back in.

DVC allows one ``dvc repro`` per checkout at a time, so each paper runs in its own checkout:

* **fan-out** (``make_checkout``): a ``git clone --shared`` of the main checkout at its current
  state (HEAD plus uncommitted edits of tracked files, ``git stash create``), with the main
  checkout's ``dvc.lock`` and the paper's uncached outputs copied in, its DVC cache pointed at the
  main checkout's cache (``.dvc/config.local``) and the paper's cached outputs checked out from it;
  the stages track to the same MLflow store (``MLFLOW_TRACKING_URI``, default the main checkout's).
* **fan-in** (``fan_in``, one at a time under a file lock): the checkout's ``dvc.lock`` entries
  ``*@<paper>`` replace the main checkout's, its uncached outputs (reports) are copied back, and
  the cached outputs are checked out in the main checkout from the shared cache. DVC's run cache
  is not used for this: it skips stages with ``persist: true`` outputs (train).

Shared blocks (``build-block@<b>``) are built in the main checkout before the fan-out, so two
papers never build the same block at once. A Dask worker must see the main checkout's folder
(same machine or a shared filesystem); across machines use the work-pool recipe instead
(``paper_pipeline(share=True)``: ``pull_shared`` / ``push_shared`` below, README "Scale-out").
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prefect import get_run_logger, task
from prefect.futures import as_completed

from flows.pipeline import STAGES, Progress, StageFailed, blocks_of, describe, dvc_stage, run_stages

LOCK_NAME = "paperops-fan-in.lock"


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def own_stages(paper: str) -> list[str]:
    """The paper's own DVC stages (the ``*@<paper>`` entries of dvc.lock)."""
    return [f"{stage}@{paper}" for stage in STAGES]


def stage_outs(root: Path, targets: list[str]) -> list[tuple[str, bool]]:
    """(output path relative to the checkout, cached?) for every output of the targets."""
    from dvc.repo import Repo

    outs = []
    with Repo(str(root)) as repo:
        for target in targets:
            for stage in repo.stage.collect(target):
                outs += [(str(out.def_path), bool(out.use_cache)) for out in stage.outs]
    return outs


def _copy(src: Path, dst: Path) -> None:
    if not src.exists():
        return
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def _checkout(root: Path, targets: list[str]) -> list[str]:
    """``dvc checkout`` of each target from the cache; returns the targets it could not restore
    (not built yet)."""
    from dvc.repo import Repo

    missing = []
    with contextlib.chdir(root), Repo(str(root)) as repo:
        try:
            repo.checkout(targets=targets, force=True)
            return []
        except Exception:  # noqa: BLE001 - some outputs never built: find which, one by one
            pass
        for target in targets:
            try:
                repo.checkout(targets=[target], force=True)
            except Exception:  # noqa: BLE001 - outputs never built: the stage runs in the checkout
                missing.append(target)
    return missing


def source_commit(root: Path) -> str:
    """The main checkout's state as a commit: HEAD, or with its uncommitted edits of tracked
    files a dangling stash commit (``git stash create`` touches neither the tree nor the index)."""
    return _git(root, "stash", "create") or _git(root, "rev-parse", "HEAD")


def make_checkout(root: Path, paper: str, commit: str, dest: Path) -> Path:
    """A checkout of ``commit`` at ``dest`` that shares ``root``'s DVC cache and starts where
    ``root`` is for the paper (its dvc.lock, the paper's and its blocks' outputs)."""
    from dvc.repo import Repo

    _git(dest.parent, "clone", "-q", "--shared", "--no-checkout", str(root), str(dest))
    _git(dest, "checkout", "-q", "--detach", commit)  # the stash commit is reachable via alternates
    with Repo(str(root)) as main:
        cache_dir = Path(main.cache.local_cache_dir).resolve()
    (dest / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {cache_dir}\n")
    if (root / "dvc.lock").is_file():
        shutil.copy2(root / "dvc.lock", dest / "dvc.lock")
    targets = [f"build-block@{b}" for b in blocks_of(paper)] + own_stages(paper)
    for path, cached in stage_outs(dest, targets):
        if not cached:
            _copy(root / path, dest / path)
    _checkout(dest, targets)
    return dest


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    lock = root / ".dvc" / "tmp" / LOCK_NAME
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fan_in(root: Path, checkout: Path, paper: str) -> list[str]:
    """Bring the paper's results from ``checkout`` into ``root``: its ``*@<paper>`` dvc.lock
    entries, its uncached outputs (copied) and its cached outputs (checked out from the shared
    cache). Returns the merged stage names."""
    from dvc.utils.serialize import modify_yaml

    names = own_stages(paper)
    theirs = (yaml.safe_load((checkout / "dvc.lock").read_text()) or {}).get("stages", {})
    entries = {name: theirs[name] for name in names if name in theirs}
    with _locked(root):
        lock = root / "dvc.lock"
        if not lock.is_file():
            lock.write_text("schema: '2.0'\nstages: {}\n")
        with modify_yaml(str(lock)) as data:
            data.setdefault("schema", "2.0")
            if data.get("stages") is None:
                data["stages"] = {}
            for name, entry in entries.items():
                data["stages"][name] = entry
        for path, cached in stage_outs(root, list(entries)):
            if not cached:
                _copy(checkout / path, root / path)
        missing = _checkout(root, list(entries))
        if missing:
            raise RuntimeError(f"fan-in of {paper}: outputs of {missing} are not in the shared DVC cache")
    return list(entries)


@task(task_run_name="{paper} (own checkout)", retries=0)
def paper_in_checkout(paper: str, root: str, commit: str, tracking_uri: str) -> list[dict[str, Any]]:
    """Run the paper's stages (one retried task each) in a fresh checkout, then fan in. Runs on a
    Dask worker; the stages' retries are their own, so this task does not retry."""
    log = get_run_logger()
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ.setdefault("PAPEROPS_PIPELINE_ID", f"{paper}-{commit[:12]}-{os.getpid()}")
    main = Path(root)
    with tempfile.TemporaryDirectory(prefix=f"paperops-{paper}-") as tmp:
        checkout = make_checkout(main, paper, commit, Path(tmp) / "checkout")
        log.info("%s: checkout %s at %s", paper, checkout, commit[:12])
        results = run_stages(paper, str(checkout), [(stage, paper) for stage in STAGES])
        try:
            merged = fan_in(main, checkout, paper)
        except Exception as exc:
            raise StageFailed(paper, "fan-in", exc) from exc
        log.info("%s: merged %s into %s", paper, ", ".join(merged), main / "dvc.lock")
    return results


def _ensure_experiments(root: Path, papers: list[str]) -> None:
    """Create the papers' MLflow experiments from the main checkout first: with the default SQLite
    store, an experiment created inside a throw-away checkout would keep its artifacts there."""
    from components.tracking.runs import configure, ensure_experiment

    client = configure(root)
    for paper in papers:
        ensure_experiment(client, paper, root)


@contextlib.contextmanager
def _api_for_workers() -> Iterator[None]:
    """Without ``PREFECT_API_URL`` the flow talks to Prefect's ephemeral server, a subprocess of
    this one; local Dask workers would each start their own on the same database (and time out
    on its lock), so they are started with this one's URL in their environment."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the process's ephemeral server (a singleton)
    if not server.running:
        yield
        return
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield
    finally:
        del os.environ["PREFECT_API_URL"]


def run_parallel(
    papers: list[str], root: Path, progress: Progress, dask_address: str | None, workers: int
) -> tuple[dict[str, Any], dict[str, StageFailed]]:
    """The body of ``all_papers(parallel=True)``: blocks in the main checkout, then one
    ``paper_in_checkout`` task per paper on a DaskTaskRunner; progress as each paper finishes."""
    from prefect_dask import DaskTaskRunner

    from components.tracking.runs import tracking_uri

    log = get_run_logger()
    results: dict[str, Any] = {}
    failures: dict[str, StageFailed] = {}
    failed_blocks: dict[str, StageFailed] = {}
    for block in sorted({b for paper in papers for b in blocks_of(paper)}):
        try:
            dvc_stage("build-block", block, str(root))
        except Exception as exc:  # noqa: BLE001 - every paper that reads the block fails with it
            failed_blocks[block] = StageFailed("", f"build-block@{block}", exc)
    runnable = []
    for paper in papers:
        broken = [failed_blocks[b] for b in blocks_of(paper) if b in failed_blocks]
        if broken:
            failures[paper] = StageFailed(paper, broken[0].stage, RuntimeError(broken[0].error))
            results[paper] = {"failed": broken[0].stage, "error": broken[0].error}
            progress.update(paper, f"failed at {broken[0].stage}: {broken[0].error}")
        else:
            runnable.append(paper)
    if not runnable:
        return results, failures
    _ensure_experiments(root, runnable)
    commit = source_commit(root)
    uri = tracking_uri(root)
    if dask_address:
        runner = DaskTaskRunner(address=dask_address)
    else:  # one thread per worker process: a DVC stage changes the process's working directory
        runner = DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
        )
    log.info("fan-out of %d papers at %s on %s", len(runnable), commit[:12], dask_address or f"{workers} local workers")
    with _api_for_workers(), runner:
        for paper in runnable:
            progress.update(paper, "running")
        futures = {
            runner.submit(paper_in_checkout, {"paper": p, "root": str(root), "commit": commit, "tracking_uri": uri}): p
            for p in runnable
        }
        for future in as_completed(list(futures)):
            paper = futures[future]
            try:  # the Dask future carries the task's return value or its exception
                outcome = future.result(raise_on_failure=False)
            except Exception as exc:  # noqa: BLE001 - e.g. a worker lost: that paper failed
                outcome = exc
            state = future.state
            if state.is_completed() and isinstance(outcome, list):
                results[paper] = outcome
                progress.update(paper, f"completed ({sum(r['ran'] for r in outcome)} stages ran)")
            else:
                error = outcome if isinstance(outcome, BaseException) else RuntimeError(str(state))
                failure = error if isinstance(error, StageFailed) else StageFailed(paper, "checkout", error)
                failures[paper] = failure
                results[paper] = {"failed": failure.stage, "error": failure.error}
                progress.update(paper, f"failed at {failure.stage}: {failure.error}")
                log.error("%s", failure)
    return results, failures


# --- the work-pool recipe: a worker's throw-away clone shares one DVC remote -------------------


def _shared_remote(root: Path) -> None:
    """Point the checkout's default DVC remote at ``$PAPEROPS_DVC_REMOTE`` when it is set."""
    url = os.environ.get("PAPEROPS_DVC_REMOTE")
    if not url:
        return
    from dvc.repo import Repo

    with Repo(str(root)) as repo, repo.config.edit("local") as conf:
        conf["remote"]["shared"] = {"url": url}
        conf["core"]["remote"] = "shared"


def pull_shared(paper: str, root: Path) -> None:
    """Fetch what the shared DVC remote already holds for the paper's outputs named in this
    checkout's dvc.lock (none after a paper's first run anywhere); missing ones are built."""
    from dvc.repo import Repo

    log = get_run_logger()
    _shared_remote(root)
    targets = [f"build-block@{b}" for b in blocks_of(paper)] + own_stages(paper)
    with contextlib.chdir(root), Repo(str(root)) as repo:
        try:
            stats = repo.pull(targets=targets, allow_missing=True)
            log.info("dvc pull %s: %s", paper, stats)
        except Exception as exc:  # noqa: BLE001 - nothing to pull is not an error here
            log.info("dvc pull %s: nothing restored (%s)", paper, describe(exc))


def push_shared(paper: str, root: Path) -> str:
    """Push the paper's outputs to the shared DVC remote, and its dvc.lock plus uncached outputs
    to a git branch ``results/<paper>/<flow run id>`` of origin, so that a fresh clone of that
    branch can ``dvc pull`` them. Returns the branch."""
    from dvc.repo import Repo
    from prefect.runtime import flow_run

    log = get_run_logger()
    _shared_remote(root)
    targets = [f"build-block@{b}" for b in blocks_of(paper)] + own_stages(paper)
    with contextlib.chdir(root), Repo(str(root)) as repo:
        pushed = repo.push(targets=targets)
    branch = f"results/{paper}/{flow_run.get_id() or os.getpid()}"
    paths = ["dvc.lock"] + [p for p, cached in stage_outs(root, own_stages(paper)) if not cached]
    paths += [line[3:] for line in _git(root, "status", "--porcelain").splitlines() if line.endswith(".gitignore")]
    _git(root, "add", "-f", "--", *[p for p in paths if (root / p).exists()])
    ident = ["-c", "user.name=paperops", "-c", "user.email=paperops@localhost"]
    _git(root, *ident, "commit", "-q", "--allow-empty", "-m", f"results of {paper} ({branch})")
    _git(root, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    log.info("%s: %d files pushed to the DVC remote; dvc.lock and reports on branch %s", paper, pushed, branch)
    return branch
