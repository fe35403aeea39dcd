"""``paperops train`` of each paper on tiny settings, in one process or as a torchrun rank.

    python -m tests.platform.ddp_worker <root> <params.yaml> <paper> ...
    torchrun --standalone --nproc_per_node 2 -m tests.platform.ddp_worker <root> <params.yaml> <paper> ...

Each paper goes through ``components.cli.main(["train", <paper>, "--params", ...])``, the command
of the README, in the directory ``<root>/rank<r>`` (rank 1 gets one of its own holding a copy of the
data, so tests/platform/test_distributed.py can check that it writes nothing; in the pipeline every
rank shares one root and rank 0 writes). The process joins the group once for all papers. Rank 0
also saves the gradient of every optimiser step (``<root>/grads-<paper>.pt``: one flat vector per
step, in call order), which the test compares.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.optim.optimizer import register_optimizer_step_pre_hook

from components import distributed
from components.cli import main as paperops

ROOT = Path(__file__).resolve().parents[2]

# seconds each; every batch splits evenly over 2 ranks (uneven blocks are allowed, not needed here)
TINY: dict[str, dict[str, dict[str, Any]]] = {
    "ebclr": {
        "sgld": {"iters": 2, "buffer_size": 32},
        "train": {"methods": ["ebclr", "simclr"], "batch_sizes": [8], "seeds": [0], "steps": 3, "snapshots": 1},
        "eval": {"probe_epochs": 2},
    },
    "ccdf": {"train": {"steps": 3, "init_steps": 1, "batch_size": 4, "checkpoint_every": 2, "log_every": 1}},
    "diffusemorph": {"train": {"steps": 3, "batch_size": 4, "checkpoint_every": 2, "log_every": 1}},
    "diffusionclip": {
        "train": {"steps": 2, "batch_size": 4, "checkpoint_every": 2, "log_every": 1},
        "finetune": {"images": 4, "iterations": 1, "batch_size": 4, "n_inv": 2, "n_train": 2},
    },
}


def write_tiny_params(path: Path) -> Path:
    """params.yaml at scale smoke, the four papers' smoke sections overridden by ``TINY``."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["scale"] = "smoke"
    for paper, sections in TINY.items():
        smoke = raw[paper].setdefault("smoke", {}) or {}
        for section, values in sections.items():
            smoke[section] = {**(smoke.get(section) or {}), **copy.deepcopy(values)}
        raw[paper]["smoke"] = smoke
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def main(root: Path, params: Path, papers: list[str]) -> None:
    torch.set_num_threads(1)
    world = distributed.init()
    steps: list[torch.Tensor] = []

    def record(optimizer: torch.optim.Optimizer, *_: Any) -> None:
        grads = [p.grad.reshape(-1) for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if grads and not isinstance(optimizer, torch.optim.LBFGS):  # LBFGS: EBCLR's probe, grads of its closure
            steps.append(torch.cat(grads).detach().cpu().clone())

    hook = register_optimizer_step_pre_hook(record)
    os.chdir(root / f"rank{world.rank}")
    try:
        for paper in papers:
            steps.clear()
            if paperops(["train", paper, "--params", str(params)]) != 0:
                raise SystemExit(f"paperops train {paper} failed")
            if world.rank == 0:
                torch.save(list(steps), root / f"grads-{paper}.pt")
    finally:
        hook.remove()
        distributed.destroy()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
