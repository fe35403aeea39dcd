"""Train the tiny configs of tests/platform/test_distributed.py, in one process or as a torchrun rank.

    python -m tests.platform.ddp_worker <root> <paper> ...                  # the single process
    torchrun --standalone --nproc_per_node 2 -m tests.platform.ddp_worker <root> <paper> ...

Each rank r works under ``<root>/rank<r>`` (rank 1 gets its own copy of the data, so the test can
check that it writes nothing: in the pipeline every rank shares one root and rank 0 writes).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from components import distributed
from components.config import load_params
from components.contract import RunContext
from components.registry import get_paper

ROOT = Path(__file__).resolve().parents[2]

# seconds each; every batch splits evenly over 2 ranks (uneven blocks are allowed, not needed here)
TINY: dict[str, dict[str, dict[str, Any]]] = {
    "ebclr": {
        "sgld": {"iters": 2, "buffer_size": 32},
        "train": {"methods": ("ebclr", "simclr"), "batch_sizes": (8,), "seeds": (0,), "steps": 3, "snapshots": 1},
        "eval": {"probe_epochs": 2},
    },
    "ccdf": {"train": {"steps": 3, "init_steps": 1, "batch_size": 4, "checkpoint_every": 2, "log_every": 1}},
    "diffusemorph": {"train": {"steps": 3, "batch_size": 4, "checkpoint_every": 2, "log_every": 1}},
    "diffusionclip": {
        "train": {"steps": 2, "batch_size": 4, "checkpoint_every": 2, "log_every": 1},
        "finetune": {"images": 4, "iterations": 1, "batch_size": 4, "n_inv": 2, "n_train": 2},
    },
}


def tiny_config(paper: str) -> Any:
    cfg = load_params(ROOT / "params.yaml", scale="smoke").config(paper)
    update = {}
    for section, values in TINY[paper].items():
        update[section] = getattr(cfg, section).model_copy(update=values)
    if paper == "diffusionclip":
        update["finetune"] = update["finetune"].model_copy(update={"targets": cfg.finetune.targets[:1]})
    return cfg.model_copy(update=update)


def main(root: Path, papers: list[str]) -> None:
    """Train each paper; rank 0 also saves the gradient every optimiser step used
    (``<root>/grads-<paper>.pt``: one flat vector per step, in call order), what the test compares."""
    torch.set_num_threads(1)
    world = distributed.init()
    steps: list[torch.Tensor] = []

    def record(optimizer: torch.optim.Optimizer, *_: Any) -> None:
        grads = [p.grad.reshape(-1) for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if grads and not isinstance(optimizer, torch.optim.LBFGS):  # LBFGS: EBCLR's probe, grads of its closure
            steps.append(torch.cat(grads).detach().cpu().clone())

    hook = register_optimizer_step_pre_hook(record)
    try:
        for paper in papers:
            steps.clear()
            cfg = tiny_config(paper)
            ctx = RunContext(paper, root / f"rank{world.rank}", seed=cfg.seed)
            torch.manual_seed(cfg.seed)  # as components.stages.seed_everything
            get_paper(paper).train(cfg, ctx)
            if world.rank == 0:
                torch.save(list(steps), root / f"grads-{paper}.pt")
    finally:
        hook.remove()
        distributed.destroy()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
