"""The four pipeline stages around a paper's pure steps: config, context, tracking, outputs.

``run_stage("train", "<paper>")`` is what ``paperops train <paper>`` (and so the DVC stage
``train@<paper>``) runs: validate params.yaml, resolve the paper's config at the chosen scale,
pick the device, seed, open the MLflow run of the stage, call the paper's step, write its outputs.

``run_block("clip")`` is what ``paperops build-block clip`` (the DVC stage ``build-block@clip``) runs:
the same around a trained shared block's ``build`` step, into ``models/blocks/<block>``, tracked as
the run ``build`` of the MLflow experiment ``block-<block>``; its metrics go to
``reports/blocks/<block>/metrics.json``.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components import distributed
from components.checkpoint import hooked
from components.config import Params, flatten, load_params
from components.contract import RunContext
from components.device import select_device
from components.outputs import ALL_METRICS, METRICS, REGISTRATION, headline_metrics, write_json_atomic
from components.progress import progress
from components.registry import get_block, get_paper

log = logging.getLogger("paperops")

STAGES = ("prepare", "train", "evaluate", "register")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (papers still draw from their own torch.Generator)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def read_metrics(report_dir: Path, name: str = ALL_METRICS) -> dict[str, float]:
    """``reports/<paper>/all_metrics.json`` (every metric) or ``metrics.json`` (the headline), as
    written by the evaluate stage."""
    path = report_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run `paperops evaluate {report_dir.name}` first")
    return json.loads(path.read_text())


# Set to 1 to let a DVC experiment (`dvc exp run`) move the alias champion when its gate passes.
PROMOTE_EXPERIMENTS = "PAPEROPS_PROMOTE_EXPERIMENTS"


def dvc_experiment() -> dict[str, str]:
    """``{"dvc.exp_name", "dvc.exp_baseline"}`` when this process runs inside a DVC experiment.

    ``dvc exp run`` (in the workspace, ``--temp`` or from the queue) sets ``DVC_EXP_NAME`` and
    ``DVC_EXP_BASELINE_REV`` for its stage commands (dvc/repo/experiments/queue/base.py); a plain
    ``dvc repro`` sets neither.
    """
    if not os.environ.get("DVC_EXP_NAME"):
        return {}
    return {"dvc.exp_name": os.environ["DVC_EXP_NAME"], "dvc.exp_baseline": os.environ.get("DVC_EXP_BASELINE_REV", "")}


def run_stage(
    stage: str,
    paper_name: str,
    root: Path | None = None,
    params: Params | None = None,
    params_path: Path | str = "params.yaml",
    scale: str | None = None,
) -> Any:
    """Run one stage of one paper, tracked as the MLflow run ``<paper>/<stage>/<scale>``.

    Args:
        stage: one of ``STAGES``.
        paper_name: a registered paper.
        root: project root (default: the current directory).
        params: already validated params (else read from ``params_path``).
        params_path: params.yaml, relative to ``root``.
        scale: override the file's scale.

    Returns:
        ``evaluate``: the metrics; ``register``: the registration record; otherwise None.
    """
    from components import tracking  # import mlflow only for stages that track

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    root = Path(root or Path.cwd()).resolve()
    params = params or load_params(root / params_path, scale=scale)
    paper = get_paper(paper_name)
    cfg = params.config(paper_name)
    device = select_device(cfg.device)
    seed_everything(cfg.seed)
    log.info("%s %s: scale=%s device=%s", stage, paper_name, params.scale, device)
    if not distributed.is_main():  # a torchrun rank > 0: computes its share, tracks and shows nothing
        ctx = RunContext(paper_name, root, device, cfg.seed, log=log)
        return _step(stage, paper, cfg, ctx, params, root)
    run_params = {**flatten(cfg), "scale": params.scale, "device.resolved": str(device)}
    if distributed.active():
        world = distributed.world()
        run_params.update({"distributed.world_size": world.size, "distributed.backend": world.backend})
    with tracking.stage_run(root, paper_name, stage, params.scale, run_params) as logger:
        ctx = RunContext(paper_name, root, device, cfg.seed, logger, progress, log)
        # every checkpoint the paper writes flushes the logger first; a resume continues its curve
        with hooked(ctx.checkpoint_dir, logger):
            return _step(stage, paper, cfg, ctx, params, root)


def _step(stage: str, paper: Any, cfg: Any, ctx: RunContext, params: Params, root: Path) -> Any:
    """Call the paper's step of ``stage`` and write the stage's own outputs."""
    from components import tracking

    if stage == "prepare":
        return paper.prepare(cfg, ctx)
    if stage == "train":
        return paper.train(cfg, ctx)
    if stage == "evaluate":
        metrics = {k: float(v) for k, v in paper.evaluate(cfg, ctx).items()}
        headline = headline_metrics(paper, metrics, paper.gate(metrics))
        write_json_atomic(ctx.report_dir / ALL_METRICS, metrics)
        write_json_atomic(ctx.report_dir / METRICS, headline)
        ctx.logger.log_metrics(metrics)
        if isinstance(ctx.logger, tracking.MlflowLogger):
            ctx.logger.log_summary(headline)
        return metrics
    metrics = read_metrics(ctx.report_dir)
    gate = paper.gate(metrics)
    experiment = dvc_experiment()
    promote = not experiment or os.environ.get(PROMOTE_EXPERIMENTS) == "1"
    if experiment and gate.passed and not promote:
        log.warning(
            "DVC experiment %s: the registered version does not become champion (set %s=1 to allow it)",
            experiment["dvc.exp_name"],
            PROMOTE_EXPERIMENTS,
        )
    headline = headline_metrics(paper, metrics, gate)
    record = tracking.register_model(root, paper, ctx.model_dir, headline, gate, promote=promote, tags=experiment)
    record["scale"] = params.scale
    record["experiment"] = experiment.get("dvc.exp_name")
    write_json_atomic(ctx.report_dir / REGISTRATION, record)
    if isinstance(ctx.logger, tracking.MlflowLogger):
        ctx.logger.log_summary(
            {}, {"registered_version": record["version"], "champion_moved": str(record["champion_moved"])}
        )
    return record


def block_built(root: Path, block: str, cfg: Any) -> bool:
    """Whether ``models/blocks/<block>/model`` was built from exactly this config."""
    from components.config import config_hash

    path = Path(root) / "models" / "blocks" / block / "model" / "config.json"
    try:
        return json.loads(path.read_text()).get("config_hash") == config_hash(cfg, exclude={"device"})
    except (OSError, ValueError):
        return False


def run_block(
    block: str,
    root: Path | None = None,
    params: Params | None = None,
    params_path: Path | str = "params.yaml",
    scale: str | None = None,
    if_needed: bool = False,
) -> dict[str, float] | None:
    """Build one trained shared block (resuming from its checkpoints), tracked as an MLflow run.

    Args:
        block: a ``components.registry.BLOCKS`` name with a section under ``blocks:``.
        if_needed: skip when ``models/blocks/<block>`` was already built from this config
            (``paperops run <paper>``); DVC's stage always runs it (a rerun resumes at the end).

    Returns:
        the block's metrics, or None when skipped.
    """
    from components import tracking

    root = Path(root or Path.cwd()).resolve()
    params = params or load_params(root / params_path, scale=scale)
    spec = get_block(block)
    cfg = params.block_config(block)
    if if_needed and block_built(root, block, cfg):
        log.info("block %s: models/blocks/%s is built from this config; not rebuilt", block, block)
        return None
    device = select_device(cfg.device)
    seed_everything(cfg.seed)
    log.info("build-block %s: scale=%s device=%s", block, params.scale, device)
    run_params = {**flatten(cfg), "scale": params.scale, "device.resolved": str(device)}
    with tracking.stage_run(root, f"block-{block}", "build", params.scale, run_params) as logger:
        ctx = RunContext(f"blocks/{block}", root, device, cfg.seed, logger, progress, log)
        with hooked(ctx.checkpoint_dir, logger):
            metrics = {k: float(v) for k, v in spec.build(cfg, ctx).items()}
        write_json_atomic(ctx.report_dir / "metrics.json", metrics)
        logger.log_metrics(metrics)
    return metrics
