"""Callback logging the data module's skipped-sample counts as metrics at the end of every epoch."""

from __future__ import annotations

import lightning as L

from datamodules.skips import SKIP_REASONS

__all__ = ["DataSkipLogger"]


class DataSkipLogger(L.Callback):
    """Log ``data/skipped/<split>/<reason>`` and ``data/skipped/<split>/total`` (cumulative, summed over ranks).

    Works with any data module exposing ``skip_counts(split) -> dict[str, int]`` (such as
    :class:`~datamodules.webdataset_audio.WebDatasetAudioDataModule`); otherwise it does nothing. Every
    reason in :data:`~datamodules.skips.SKIP_REASONS` is logged (zeros included) so all ranks log the
    same keys, which DDP's reduction needs.

    Args:
        reasons: log one metric per reason (False: only the total).
    """

    def __init__(self, *, reasons: bool = True) -> None:
        super().__init__()
        self.reasons = reasons

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        counts_fn = getattr(datamodule, "skip_counts", None)
        if counts_fn is None or trainer.sanity_checking:
            return
        counts = counts_fn(split)
        names = SKIP_REASONS if self.reasons else ()
        for reason in names:
            pl_module.log(f"data/skipped/{split}/{reason}", float(counts.get(reason, 0)), on_step=False,
                          on_epoch=True, sync_dist=True, reduce_fx="sum")  # fmt: skip
        pl_module.log(f"data/skipped/{split}/total", float(sum(counts.values())), on_step=False, on_epoch=True,
                      sync_dist=True, reduce_fx="sum")  # fmt: skip

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, "train")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, "test")
