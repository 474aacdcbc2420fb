"""Fully sharded data parallel training (FSDP2: torch's ``fully_shard``) for the 1.5B+ models.

:class:`FSDP2Strategy` is Lightning's ``ModelParallelStrategy`` with stylecond's sharding plan applied
after ``configure_model`` (which loads the frozen pretrained parts and any LoRA adapters):

- every ``TransformerLayer`` is its own shard unit (wrap per layer: one all-gather per layer);
- then every other module that owns trainable parameters and holds no frozen ones (the LM's embeddings,
  heads and final norm; the text projection; the style encoder's projections) is a unit;
- frozen parts (codec, text encoder, style feature extractor) are neither sharded nor trained: they stay
  whole on every rank, outside the optimizer;
- RVQ codebooks and BatchNorm statistics are buffers, not sharded: the bottleneck sums its statistics
  across ranks and the model averages BatchNorm statistics, so they stay equal on every rank;
- activation checkpointing on every transformer (optional);
- checkpoints are sharded (``torch.distributed.checkpoint`` directories); ``stylecond export`` consolidates
  them.

Shards span every rank (a 1-D mesh over the world: no tensor parallelism). Mixed precision comes from the
trainer's ``precision: bf16-mixed`` (autocast; parameters, gradients and their reduction stay float32).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn

from stylecond.layers.transformer import Transformer
from stylecond.layers.transformer_layer import TransformerLayer


def _has(module: nn.Module, *, trainable: bool) -> bool:
    return any(p.requires_grad == trainable for p in module.parameters())


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules ``fully_shard`` wraps, innermost first: every TransformerLayer, then the largest modules
    that own trainable parameters and no frozen ones (each parameter lands in exactly one unit)."""
    units: list[nn.Module] = [
        m for m in model.modules() if isinstance(m, TransformerLayer) and _has(m, trainable=True)
    ]

    def visit(module: nn.Module) -> None:
        if isinstance(module, TransformerLayer) or not _has(module, trainable=True):
            return
        if not _has(module, trainable=False):
            units.append(module)
            return
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if own:
            raise ValueError(
                f"{type(module).__name__} holds trainable parameters next to frozen submodules: it cannot be sharded "
                "without sharding the frozen ones"
            )
        for child in module.children():
            visit(child)

    for child in model.children():
        visit(child)
    return units


def shard_model(model: nn.Module, *, device: torch.device, activation_checkpointing: bool) -> list[nn.Module]:
    """Apply the sharding plan to ``model`` in place on a mesh over every rank; returns the units."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    if activation_checkpointing:
        for module in model.modules():
            if isinstance(module, Transformer):
                module.set_activation_checkpointing(True)
    units = shard_units(model)
    for unit in units:
        fully_shard(unit, mesh=mesh)
    model.to(device)  # the frozen parts, which no unit moved
    return units


class FSDP2Strategy(ModelParallelStrategy):
    """FSDP2 for stylecond models: per-layer sharding, frozen parts whole, sharded checkpoints.

    Args:
        activation_checkpointing: recompute each transformer layer in the backward pass.
        save_distributed_checkpoint: each rank writes its own shard (``stylecond export`` consolidates);
            False gathers a full checkpoint on rank 0.
        process_group_backend: torch.distributed backend (default: nccl on GPUs, gloo on CPUs).
        timeout: collective timeout.
    """

    def __init__(
        self,
        *,
        activation_checkpointing: bool = True,
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
        timeout: Any = None,
    ) -> None:
        kwargs: dict[str, Any] = {"save_distributed_checkpoint": save_distributed_checkpoint}
        if process_group_backend is not None:
            kwargs["process_group_backend"] = process_group_backend
        if timeout is not None:
            kwargs["timeout"] = timeout
        super().__init__(**kwargs)
        self.activation_checkpointing = activation_checkpointing

    def setup(self, trainer: L.Trainer) -> None:
        model = self.lightning_module
        assert model is not None
        shard_model(model, device=self.root_device, activation_checkpointing=self.activation_checkpointing)
        super().setup(trainer)
