"""Logging from a child LightningModule (a block inside a bigger model) through its parent's Trainer."""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
from torch import Tensor

_LOGGABLE_HOOKS = {"training_step", "validation_step", "test_step"}


def log_child_metrics(
    module: L.LightningModule, metrics: Mapping[str, Tensor | float], *, batch_size: int
) -> bool:
    """Log ``metrics`` through the Trainer attached to ``module`` (directly or via its parent).

    ``self.log`` only works on the module the Trainer runs, so a child block logs through
    ``trainer.lightning_module``. Does nothing (returns False) when no Trainer is attached or when
    called outside a step hook, so the block also works as a plain ``nn.Module``.
    """
    trainer = getattr(module, "_trainer", None)
    if trainer is None:
        return False
    root = trainer.lightning_module
    if root is None or getattr(trainer, "_results", None) is None:
        return False
    if root._current_fx_name not in _LOGGABLE_HOOKS:
        return False
    root.log_dict(dict(metrics), on_step=True, on_epoch=False, batch_size=batch_size)
    return True
