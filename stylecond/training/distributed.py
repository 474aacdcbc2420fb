"""Keep BatchNorm running statistics identical across DDP ranks on any backend (gloo included)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@torch.no_grad()
def average_batchnorm_stats_(module: nn.Module) -> int:
    """All-reduce (average) ``running_mean`` / ``running_var`` of every BatchNorm in ``module``; returns the count.

    DDP averages gradients but not buffers, so each rank's BatchNorm running statistics follow its own
    data. ``torch.nn.SyncBatchNorm`` (``Trainer(sync_batchnorm=True)``) fixes that on GPUs only (it
    refuses CPU tensors), so this works everywhere: one all-reduce of the flattened statistics per call.
    ``SyncBatchNorm`` layers are skipped (already identical). A no-op outside ``torch.distributed``.
    """
    world = _world_size()
    if world == 1:
        return 0
    stats: list[torch.Tensor] = []
    for m in module.modules():
        if not isinstance(m, _BatchNorm) or isinstance(m, nn.SyncBatchNorm):
            continue
        if m.running_mean is not None and m.running_var is not None:
            stats += [m.running_mean, m.running_var]
    if not stats:
        return 0
    flat = torch.cat([t.detach().float().reshape(-1) for t in stats])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for t in stats:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n
    return len(stats) // 2
