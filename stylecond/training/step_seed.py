"""Seeds every global random generator before each training batch, from where the batch is in the run."""

from __future__ import annotations

import os
from typing import Any

import lightning as L

from stylecond.utils.seeds import make_seed, seed_all

__all__ = ["StepSeed"]


class StepSeed(L.Callback):
    """Seed torch (CPU, CUDA), numpy and ``random`` before each training batch from (seed, step, batch, rank).

    A batch's randomness (dropout, conditioning and word dropout, style excerpts, codebook restarts) then
    depends only on its place in the run, not on what ran before it (validation, previews, a sanity
    check, a restart). With the data module's resumable stream, a run killed and resumed with
    ``--ckpt_path`` logs the same losses as the uninterrupted run, and ranks draw different numbers.

    Args:
        seed: base seed; None takes ``seed_everything``'s (``PL_GLOBAL_SEED``), else 0.
    """

    def __init__(self, *, seed: int | None = None) -> None:
        self.seed = seed

    def _base(self) -> int:
        if self.seed is not None:
            return self.seed
        return int(os.environ.get("PL_GLOBAL_SEED", "0"))

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        seed_all(make_seed(self._base(), trainer.global_step, batch_idx, trainer.global_rank))
