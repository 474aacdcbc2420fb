"""``EMA``: an exponential moving average of the trainable weights that also works under FSDP2.

Lightning's ``EMAWeightAveraging`` deep-copies the whole module before sharding, so it cannot follow a
sharded model. This callback keeps one shadow tensor per trainable parameter, created after the strategy
has set the model up: under FSDP2 the shadow of a sharded parameter is itself sharded (a DTensor of the
same placement), so it costs 1/N of the weights per rank. The shadows are saved inside the checkpoint's
``state_dict`` under ``_ema.<name>`` (sharded checkpoints write them sharded), so ``stylecond export``
exports the averaged weights and a resumed run continues the average.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from stylecond.utils.ema_state import EMA_PREFIX, EMA_STATE_KEY


class EMA(L.Callback):
    """Exponential moving average of the trainable parameters (the paper's weight EMA 0.99).

    Validation (and the ``GenerationPreview`` listed before this callback) runs on the averaged weights;
    training continues on the raw ones. Works on one device, under DDP and under FSDP2.

    Args:
        decay: EMA decay per update.
        every_n_steps: update after every n-th optimizer step.
        validate_with_ema: swap the averaged weights in for validation.
    """

    def __init__(
        self, *, decay: float = 0.99, every_n_steps: int = 1, validate_with_ema: bool = True
    ) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1); got {decay}")
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1; got {every_n_steps}")
        self.decay, self.every_n_steps, self.validate_with_ema = decay, every_n_steps, validate_with_ema
        self.shadow: dict[str, Tensor] = {}
        self._pending: dict[str, Tensor] | None = None
        self._swapped = False

    @staticmethod
    def _params(pl_module: L.LightningModule) -> dict[str, torch.nn.Parameter]:
        """Trainable parameters, sharded ones as their shards (FSDP2 leaves a root unit's parameters
        gathered after a forward without backward: reshard them first)."""
        from torch.distributed.fsdp import FSDPModule

        for module in pl_module.modules():
            if isinstance(module, FSDPModule):
                module.reshard()
        return {n: p for n, p in pl_module.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.shadow = {n: p.detach().clone() for n, p in self._params(pl_module).items()}
        self._apply_pending(trainer)

    @torch.no_grad()
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        for name, p in self._params(pl_module).items():
            self.shadow[name].lerp_(p.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def _swap(self, pl_module: L.LightningModule) -> None:
        for name, p in self._params(pl_module).items():
            current = p.detach().clone()
            p.detach().copy_(self.shadow[name])
            self.shadow[name].copy_(current)
        self._swapped = not self._swapped

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.validate_with_ema and self.shadow and trainer.state.fn == "fit" and not self._swapped:
            self._swap(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._swapped:
            self._swap(pl_module)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        state = checkpoint.get("state_dict")
        if state is None or not self.shadow:
            return
        for name, value in self.shadow.items():
            state[EMA_PREFIX + name] = value.detach() if _is_dtensor(value) else value.detach().cpu()

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        pending = checkpoint.get(EMA_STATE_KEY)
        if pending:
            self._pending = dict(pending)
        elif trainer.ckpt_path is not None and Path(trainer.ckpt_path).is_dir():
            self._pending = {}  # a sharded checkpoint: read the shadows from its shards once they exist
        self._apply_pending(trainer)

    @torch.no_grad()
    def _apply_pending(self, trainer: L.Trainer) -> None:
        if self._pending is None or not self.shadow:
            return
        if not self._pending and trainer.ckpt_path is not None:
            import torch.distributed.checkpoint as dcp

            target = {EMA_PREFIX + n: t for n, t in self.shadow.items()}
            dcp.load({"state_dict": target}, checkpoint_id=str(trainer.ckpt_path))
        else:
            for name, value in self._pending.items():
                if name in self.shadow:
                    self.shadow[name].copy_(value.to(self.shadow[name].device))
        self._pending = None


def _is_dtensor(t: Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)
