"""The MusicGen training recipe: AdamW with decoupled weight decay, cosine schedule with warm-up."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

_NO_DECAY_TYPES = (nn.LayerNorm, nn.Embedding, nn.BatchNorm1d, nn.GroupNorm, nn.RMSNorm)


@dataclass
class OptimConfig:
    """Optimizer and schedule (docs/design.md §4: AdamW 1e-4, betas 0.9/0.95, wd 0.1, cosine, 4000 warm-up).

    Args:
        lr: Peak learning rate.
        betas: AdamW betas.
        weight_decay: Decoupled weight decay.
        warmup_steps: Linear warm-up steps.
        total_steps: Length of the cosine schedule; ``None`` takes ``trainer.estimated_stepping_batches``.
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        no_decay_norms_embeddings: Exclude norms, embeddings and biases from weight decay.
    """

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    warmup_steps: int = 4000
    total_steps: int | None = None
    min_lr_ratio: float = 0.0
    no_decay_norms_embeddings: bool = True


def param_groups(module: nn.Module, *, weight_decay: float, no_decay_norms_embeddings: bool) -> list[dict]:
    """Split trainable parameters into decayed and non-decayed groups (each parameter once)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for mod in module.modules():
        for name, p in mod.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            exempt = isinstance(mod, _NO_DECAY_TYPES) or name.endswith("bias") or p.dim() < 2
            (no_decay if no_decay_norms_embeddings and exempt else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> LambdaLR:
    """Linear warm-up to the peak, then cosine decay to ``min_lr_ratio`` at ``total_steps``."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    warmup = max(0, min(warmup_steps, total_steps - 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def build_optimizer(module: nn.Module, config: OptimConfig, *, total_steps: int) -> dict:
    """Lightning ``configure_optimizers`` return value for ``module`` under ``config``."""
    groups = param_groups(
        module, weight_decay=config.weight_decay, no_decay_norms_embeddings=config.no_decay_norms_embeddings
    )
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)
    steps = config.total_steps or total_steps
    scheduler = cosine_with_warmup(
        optimizer, warmup_steps=config.warmup_steps, total_steps=steps, min_lr_ratio=config.min_lr_ratio
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
