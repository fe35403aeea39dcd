"""torchrun data parallelism (components/distributed.py): 2 gloo processes train what one process does.

For each of EBCLR, CCDF, DiffuseMorph and DiffusionCLIP, a tiny config (tests/platform/ddp_worker.py)
is trained once in one process and once by ``torchrun --nproc_per_node 2`` (gloo, CPU), from the same
data and seeds. What must be equal, and why:

* **the gradient of every optimiser step** (the strong check): every rank draws the same batch,
  noise, timesteps, augmentations and SGLD chains as the single process; each evaluates the networks
  on its half of the rows, and the summed gradients are the full-batch gradient. Equal up to float
  order (a batched op over 4 rows vs 8, one backward vs. a sum of two): relative error
  ``||g_1 - g_2|| / ||g_1|| <= 1e-4`` per step; measured <= 6e-6. A wrong split (half the batch
  lost, a gradient doubled, a chain refined by the wrong rank) is off by 0.3 or more. EBCLR's SimCLR
  baseline has BatchNorm and is not split (every rank runs its whole step): its gradients must be
  equal too (they are, bit for bit).
* **the exported weights**: Adam divides by the root of the gradient's second moment, so a
  coordinate whose gradient is at rounding level can move by up to ~lr per step in either run;
  hence ``max |w_1 - w_2| <= 1e-3`` (>= 2 x lr x the few steps of these configs) and, over all
  weights, ``||w_1 - w_2|| / ||w_1|| <= 1e-4`` (measured <= 6e-6).

Both runs go through ``paperops train <paper>`` (components.cli.main, what ``torchrun ... -m
components train <paper>`` runs). Rank 1 works in a directory of its own holding only a copy of the
data and the CLIP block: it must write nothing there; rank 0 tracks one MLflow run per paper.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from components.cli import main as paperops
from components.config import load_params
from components.contract import RunContext
from components.registry import get_paper
from tests.platform.ddp_worker import write_tiny_params

PAPERS = ("ebclr", "ccdf", "diffusemorph", "diffusionclip")  # the data-parallel trainers

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GRAD_RTOL = 1e-4
WEIGHT_ATOL = 1e-3
WEIGHT_RTOL = 1e-4


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PAPEROPS_NO_PROGRESS="1", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def _torchrun() -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict[str, tuple[int, int]]]:
    """``single/rank0`` (one process) and ``multi/rank0``, ``multi/rank1`` (torchrun), same data;
    each run tracks into its own MLflow store (``<run>/mlflow.db``)."""
    base = tmp_path_factory.mktemp("ddp")
    params = write_tiny_params(base / "params.yaml")
    torch.set_num_threads(1)
    first = base / "single" / "rank0"
    for paper in PAPERS:
        cfg = load_params(params).config(paper)
        ctx = RunContext(paper, first, seed=cfg.seed)
        get_paper(paper).prepare(cfg, ctx)
        if paper == "diffusionclip":
            ctx.block_dir("clip")  # built once (standalone config); copied, so both runs read the same
    for rank in ("rank0", "rank1"):
        shutil.copytree(first / "data", base / "multi" / rank / "data")
        shutil.copytree(first / "models" / "blocks", base / "multi" / rank / "models" / "blocks")
    before = _files(base / "multi" / "rank1")
    worker = ["-m", "tests.platform.ddp_worker"]
    procs = {
        run: subprocess.Popen(
            [*launch, *worker, str(base / run), str(params), *PAPERS],
            env=_env(MLFLOW_TRACKING_URI=f"sqlite:///{base / run / 'mlflow.db'}"),
            **_pipes(),
        )
        for run, launch in (("single", [sys.executable]), ("multi", _torchrun()))
    }
    for run, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{run} run failed:\n{out[-4000:]}"
    return base, before


def _pipes() -> dict:
    return {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}


@pytest.mark.parametrize("paper", PAPERS)
def test_every_step_has_the_single_process_gradient(trained: tuple, paper: str) -> None:
    base = trained[0]
    one = torch.load(base / "single" / f"grads-{paper}.pt", weights_only=True)
    two = torch.load(base / "multi" / f"grads-{paper}.pt", weights_only=True)
    assert len(one) == len(two) >= 3
    errors = [float((a - b).norm() / a.norm()) for a, b in zip(one, two, strict=True)]
    print(f"{paper}: {len(one)} optimiser steps, max relative gradient error {max(errors):.1e}")
    assert max(errors) <= GRAD_RTOL, f"{paper}: relative gradient error per step {errors}"


@pytest.mark.parametrize("paper", PAPERS)
def test_weights_equal_the_single_process_run(trained: tuple, paper: str) -> None:
    base = trained[0]
    one = load_file(str(base / "single" / "rank0" / "models" / paper / "model" / "model.safetensors"))
    two = load_file(str(base / "multi" / "rank0" / "models" / paper / "model" / "model.safetensors"))
    assert one.keys() == two.keys()
    a = torch.cat([one[k].float().reshape(-1) for k in sorted(one)])
    b = torch.cat([two[k].float().reshape(-1) for k in sorted(one)])
    diff = a - b
    print(f"{paper}: weights max |diff| {float(diff.abs().max()):.1e}, relative {float(diff.norm() / a.norm()):.1e}")
    assert float(diff.abs().max()) <= WEIGHT_ATOL
    assert float(diff.norm() / a.norm()) <= WEIGHT_RTOL
    assert not torch.equal(a, torch.zeros_like(a))


def test_rank_1_writes_no_file(trained: tuple) -> None:
    base, before = trained
    assert _files(base / "multi" / "rank1") == before, "rank 1 wrote or changed a file"
    assert (base / "multi" / "rank0" / "models" / "ccdf" / "checkpoints").is_dir()  # rank 0 did write


def test_rank_0_tracks_one_run_per_paper(trained: tuple) -> None:
    with sqlite3.connect(trained[0] / "multi" / "mlflow.db") as db:
        runs = db.execute("SELECT name FROM runs").fetchall()
        world = db.execute("SELECT value FROM params WHERE key = 'distributed.world_size'").fetchall()
    assert sorted(runs) == sorted((f"{p}/train/smoke",) for p in PAPERS)
    assert world == [("2",)] * len(PAPERS)


def test_the_data_parallel_papers_are_told_by_their_code() -> None:
    from components.distributed import supports
    from components.registry import PAPERS as REGISTERED
    from components.registry import get_paper

    for name in REGISTERED:
        get_paper(name)
    assert {name for name, package in REGISTERED.items() if supports(package)} == set(PAPERS)


def test_under_torchrun_only_train_of_the_four_papers_runs(monkeypatch, capsys) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets; refused before joining any group
    assert paperops(["evaluate", "ccdf", "--scale", "smoke"]) == 2
    assert paperops(["train", "noise2score", "--scale", "smoke"]) == 2
    assert "under torchrun only `train <paper>`" in capsys.readouterr().err
