"""Which Trainer, if any, drives a LightningModule: through Lightning's public ``trainer`` property."""

from __future__ import annotations

import lightning as L


def attached_trainer(module: L.LightningModule) -> L.Trainer | None:
    """``module.trainer``, or None when the module runs without one (as a plain ``nn.Module``)."""
    try:
        return module.trainer
    except RuntimeError:  # Lightning: "<Module> is not attached to a `Trainer`."
        return None
