"""``torch.distributed`` helpers that work on any backend (gloo included) and are no-ops when not distributed."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def world_size() -> int:
    """Processes in the default group (1 when ``torch.distributed`` is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return world_size() > 1


@torch.no_grad()
def all_reduce_sum_(tensors: list[Tensor]) -> None:
    """Sum each tensor across ranks in place, with one collective for the whole list."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    dist.all_reduce(flat)
    _unflatten_into(flat, tensors)


@torch.no_grad()
def broadcast_(tensors: list[Tensor], *, src: int = 0) -> None:
    """Copy rank ``src``'s values of ``tensors`` to every rank, with one collective for the whole list."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    dist.broadcast(flat, src=src)
    _unflatten_into(flat, tensors)


def _unflatten_into(flat: Tensor, tensors: list[Tensor]) -> None:
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


@torch.no_grad()
def average_batchnorm_stats_(module: nn.Module) -> int:
    """All-reduce (average) ``running_mean`` / ``running_var`` of every BatchNorm in ``module``; returns the count.

    DDP averages gradients but not buffers, so each rank's BatchNorm running statistics follow its own
    data. ``torch.nn.SyncBatchNorm`` (``Trainer(sync_batchnorm=True)``) fixes that on GPUs only (it
    refuses CPU tensors), so this works everywhere: one all-reduce of the flattened statistics per call.
    ``SyncBatchNorm`` layers are skipped (already identical). A no-op outside ``torch.distributed``.
    """
    world = world_size()
    if world == 1:
        return 0
    stats: list[Tensor] = []
    for m in module.modules():
        if not isinstance(m, _BatchNorm) or isinstance(m, nn.SyncBatchNorm):
            continue
        if m.running_mean is not None and m.running_var is not None:
            stats += [m.running_mean, m.running_var]
    if not stats:
        return 0
    all_reduce_sum_(stats)
    for t in stats:
        t.div_(world)
    return len(stats) // 2


def is_sharded(module: nn.Module) -> bool:
    """Whether some parameter of ``module`` is sharded across ranks (FSDP2: a DTensor)."""
    if not dist.is_available():  # torch built without distributed: nothing can be sharded
        return False
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in module.parameters())
