"""A callback for multi-process tests: each rank writes what it holds at the end of training."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.distributed.tensor import DTensor


class RankReport(L.Callback):
    """At train end, rank r writes ``<out_dir>/rank<r>.pt``: every buffer (RVQ codebooks, BatchNorm
    statistics), and per parameter whether it is sharded (a DTensor) and trainable."""

    def __init__(self, *, out_dir: str) -> None:
        self.out_dir = out_dir

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        report = {
            "buffers": {n: b.detach().cpu().clone() for n, b in pl_module.named_buffers()},
            "sharded": {n: isinstance(p, DTensor) for n, p in pl_module.named_parameters()},
            "trainable": {n: p.requires_grad for n, p in pl_module.named_parameters()},
        }
        torch.save(report, Path(self.out_dir) / f"rank{trainer.global_rank}.pt")
