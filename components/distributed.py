"""Data-parallel training over torchrun processes (gloo on CPU, NCCL on CUDA), exact by construction.

    torchrun --standalone --nproc_per_node 2 -m components train <paper>

runs ``paperops train <paper>`` in 2 processes (``components/cli.py`` calls ``init`` first and
``destroy`` last). A paper's trainer is data-parallel when its code all-reduces its gradients with
``reduce_gradients`` (``supports``): EBCLR, CCDF, DiffuseMorph and DiffusionCLIP today; any other
stage or paper under torchrun is refused (exit 2). Rank 0 does every side
effect of the stage (checkpoints, the exported model, files, the MLflow run, the progress bar);
the other ranks compute and write nothing (``is_main``).

How the ranks share a step, so that the result equals the single process's:

1. **Same draws.** Every rank runs the trainer's loop unchanged: the same global batch, the same
   noise, timesteps, augmentations, SGLD chains and buffer draws, from the same generators seeded the
   same way. Every rank holds the full batch and every tensor the single process holds.
2. **Split network calls.** A network call on the batch goes through ``shard(fn, *args)``: rank r
   evaluates ``fn`` on its contiguous block of rows (``tensor_split`` into W blocks) and the blocks
   are all-gathered, so every rank holds the full output, with the values the single process
   computes (up to the float order inside a batched op), and computes the full loss from it.
   The gather's backward hands each rank the gradient of *its own* rows only.
3. **Summed gradients.** Rank r's parameter gradient is then the part of the full-batch gradient
   that flows through its rows' evaluations; ``reduce_gradients`` all-reduces (SUM) them, so every
   rank holds the single process's full-batch gradient and takes the same optimiser step (and
   clips, EMAs, steps AMP scalers on the same numbers). DDP's reducer does the same all-reduce
   (with a mean, over per-rank losses); we call it ourselves because the nets are also called
   outside the loss (SGLD's gradient in x, DDIM chains through every step), where DDP's hooks
   would misfire.

Where this is exact: the rows of a batch must not interact between network calls (what one row's
output feeds into another row's *later* network call would lose that path: rank r's graph holds
only its own evaluations). The loss itself may couple rows freely (NT-Xent, EBCLR's log q over
the batch: every rank computes it in full). In the four trainers every chain of calls is row-wise:
DDPM noise prediction (CCDF, DiffusionCLIP), DiffuseMorph's score net feeding its deformation net
row by row, DiffusionCLIP's DDIM generation through every step, EBCLR's SGLD chains (each chain's
gradient in x is its own: the reference views are detached). And no network may mix rows inside a
call: BatchNorm in train mode does (per-block statistics), so EBCLR's SimCLR and MoCo baselines
(ResNet-18 *with* BatchNorm; EBCLR's own nets have none) are not split: every rank runs their full
step (exactly equal, no speed-up; SyncBatchNorm would need CUDA). The other nets use GroupNorm or
no normalisation. What remains is float order: a batched op on a block of rows vs. the whole batch,
and the all-reduce adding W partial gradients where the single process adds one backward's terms.
tests/platform/test_distributed.py checks, with 2 gloo processes, every optimiser step's gradient
against the single process's (relative error <= 1e-4) and the exported weights after a few steps.

Per paper, what is split and what equals the single process (up to float order, unless "exact"):

* EBCLR: the EBCLR net on both views, on the SGLD chains (each rank refines its block of chains
  with the noise the single process draws for them; ``sync_rows`` gathers the refined chains, so the
  replay buffer is identical on every rank) and on the negatives. Gradients and weights equal.
  Its lambda2 = 0 ablation likewise. SimCLR and MoCo (BatchNorm): not split, exact.
* CCDF: the eps-network of the DDPM loss and the feed-forward initialisers; gradient clipping, EMA
  and Adam act on the full-batch gradient. Equal.
* DiffuseMorph: score and deformation nets (the registration loss flows back through eps_hat row by
  row) and the VoxelMorph-style baseline. Equal.
* DiffusionCLIP: the DDPM phase's eps-network; in fine-tuning, the fine-tuned copy at every DDIM
  step of the generation (gradients through every step). The frozen CLIP encoder of the loss and
  the DDIM inversion of the latents run whole on every rank. Equal.

With one process (no torchrun, or ``WORLD_SIZE=1``) ``shard(fn, *a)`` is ``fn(*a)`` and
``reduce_gradients`` does nothing: the single-process path is the code it was, bit for bit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes; ``local_rank`` picks the GPU."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""


_WORLD = World()


def launched() -> bool:
    """Whether torchrun (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(timeout_s: float = 1800.0) -> World:
    """Join the process group from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT): NCCL when CUDA is available (and ``cuda:LOCAL_RANK`` becomes the
    current device), else gloo. Without a multi-process launch it does nothing."""
    global _WORLD
    if not launched():
        return _WORLD
    if dist.is_initialized():
        return _WORLD
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    _WORLD = World(dist.get_rank(), dist.get_world_size(), local, backend)
    return _WORLD


def world() -> World:
    return _WORLD


def active() -> bool:
    """Whether this process is one of several (after ``init``)."""
    return _WORLD.size > 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes files, logs and shows progress."""
    return _WORLD.rank == 0


def barrier() -> None:
    if active():
        dist.barrier()


def destroy() -> None:
    """Leave the process group (after a barrier, so rank 0's last files are written)."""
    global _WORLD
    if active() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _WORLD = World()


def _block(n: int) -> tuple[int, int]:
    """``[lo, hi)``: this rank's contiguous block of ``n`` rows (``torch.tensor_split``'s blocks)."""
    return _bounds(n, _WORLD.rank, _WORLD.size)


class _GatherRows(torch.autograd.Function):
    """Forward: the full ``(n, ...)`` tensor from every rank's block. Backward: this rank's block
    of the incoming gradient (the other blocks' evaluations live in the other ranks' graphs)."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, n: int) -> torch.Tensor:
        size = _WORLD.size
        blocks = [_bounds(n, r, size) for r in range(size)]
        longest = max(hi - lo for lo, hi in blocks)
        padded = local.new_zeros((longest, *local.shape[1:]))
        padded[: len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(size)]
        dist.all_gather(parts, padded.contiguous())
        ctx.lo, ctx.hi = blocks[_WORLD.rank]
        return torch.cat([p[: hi - lo] for p, (lo, hi) in zip(parts, blocks, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad[ctx.lo : ctx.hi], None


def _bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    q, r = divmod(n, size)
    lo = rank * q + min(rank, r)
    return lo, lo + q + (1 if rank < r else 0)


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """The full ``(n, ...)`` tensor from every rank's contiguous block (differentiable: see above)."""
    return _GatherRows.apply(local, n)


def sync_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``(n, ...)`` whose rows are right only in this rank's block: every block from its
    owner (e.g. SGLD chains, each refined by the rank that evaluated it). Identity with one process."""
    if not active():
        return x
    lo, hi = _block(len(x))
    with torch.no_grad():
        return gather_rows(x[lo:hi].contiguous(), len(x))


def shard(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with the batch split over the ranks: every tensor argument whose first
    dimension is the batch's (the first tensor's) is cut to this rank's block, the others are
    passed whole; the output (a tensor or a tuple of tensors, batch first) is gathered. With one
    process it is ``fn(*args)``."""
    if not active():
        return fn(*args)
    n = next(a for a in args if isinstance(a, torch.Tensor)).shape[0]
    if n < _WORLD.size:
        raise ValueError(f"a batch of {n} rows cannot be split over {_WORLD.size} processes")
    lo, hi = _block(n)
    cut = [a[lo:hi] if isinstance(a, torch.Tensor) and a.dim() and a.shape[0] == n else a for a in args]
    out = fn(*cut)
    if isinstance(out, tuple):
        return tuple(gather_rows(o, n) for o in out)
    return gather_rows(out, n)


def reduce_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce (SUM) the parameters' gradients: each rank's part -> the full-batch gradient.

    One flat buffer per dtype and device (one all-reduce). Every rank must hold the same set of
    gradients (they run the same code); parameters without one are skipped.
    """
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for g in grads:
        groups.setdefault((g.dtype, g.device), []).append(g)
    for group in groups.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for g in group:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def supports(package: str) -> bool:
    """Whether the paper package ``package`` (imported, e.g. by ``registry.get_paper``) trains
    data-parallel: one of its modules uses ``reduce_gradients``. Read from the code itself, so no
    platform file names papers (components/registry.py is the one that may)."""
    prefix = package + "."
    return any(
        vars(module).get("reduce_gradients") is reduce_gradients
        for name, module in list(sys.modules.items())
        if module is not None and (name == package or name.startswith(prefix))
    )
