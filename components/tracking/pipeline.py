"""One parent MLflow run per pipeline: the four stage runs of one paper, run together, nest under it.

The stages are separate processes under DVC (``dvc repro`` runs ``paperops <stage> <paper>`` once
per stage), so "run together" needs a key that every stage process of one invocation shares and
no other invocation does. In order of precedence:

1. ``PAPEROPS_PIPELINE_ID``: set by whoever orchestrates (``paperops run`` sets a fresh one; a
   Prefect flow or a CI job may set its own run id).
2. A stage command run by DVC (DVC sets ``DVC_STAGE`` for every stage command, dvc/stage/run.py):
   the process that runs DVC, i.e. the nearest ancestor that is not a shell (``dvc repro``,
   ``dvc exp run``, or the Python process that calls DVC's API), identified by host, pid and start
   time. Every stage of one ``dvc repro`` shares it; the next ``dvc repro`` is another process.
3. Otherwise (``paperops train <paper>`` by hand) the stage run has no parent.

The parent run is named ``<paper>/pipeline/<scale>``, tagged ``paperops.stage=pipeline`` and
``paperops.pipeline=<key>``, and found again by that tag in the paper's experiment; its status
follows its latest stage. In a DVC experiment it carries the experiment's name (``dvc.exp_name``),
like its stage runs.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import RunStatus

log = logging.getLogger(__name__)

PIPELINE_ID = "PAPEROPS_PIPELINE_ID"
PIPELINE_STAGE = "pipeline"
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "fish", "busybox", "env", "nice", "timeout"}


def dvc_process_key() -> str | None:
    """``dvc:<host>:<pid>:<start time>`` of the process running DVC, when DVC runs this stage."""
    if not os.environ.get("DVC_STAGE"):
        return None
    import psutil  # a dependency of DVC

    try:
        proc = psutil.Process().parent()
        while proc is not None and Path(proc.name()).name.lower() in _SHELLS:
            proc = proc.parent()
        if proc is None:
            return None
        return f"dvc:{socket.gethostname()}:{proc.pid}:{proc.create_time():.3f}"
    except psutil.Error:
        return None


def pipeline_key() -> str | None:
    """The key this stage's pipeline invocation is grouped by (None: not part of a pipeline)."""
    return os.environ.get(PIPELINE_ID) or dvc_process_key()


def parent_run(client: MlflowClient, experiment_id: str, key: str, paper: str, scale: str, tags: dict[str, str]) -> str:
    """The id of the pipeline's parent run in ``experiment_id``: found by its key, else created."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`paperops.stage` = '{PIPELINE_STAGE}' and tags.`paperops.pipeline` = '{key}'",
        max_results=1,
    )
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        client.set_tag(run_id, "paperops.pid", str(os.getpid()))
        return run_id
    parent_tags = {**tags, "paperops.stage": PIPELINE_STAGE, "paperops.pipeline": key}
    run = client.create_run(experiment_id, run_name=f"{paper}/{PIPELINE_STAGE}/{scale}", tags=parent_tags)
    client.log_param(run.info.run_id, "scale", scale)
    log.info("pipeline run %s (%s) groups the stages of %s", run.info.run_id, key, paper)
    return run.info.run_id


def finish_parent(client: MlflowClient, run_id: str, status: str) -> None:
    """Give the parent run its latest stage's status and end time (a later stage reopens it)."""
    client.set_terminated(run_id, status=status, end_time=int(time.time() * 1000))
