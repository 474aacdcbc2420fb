"""StepSeed: a batch's random draws depend only on (seed, step, batch, rank)."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from stylecond.training.step_seed import StepSeed


def _draws(callback: StepSeed, *, step: int, batch_idx: int, rank: int) -> tuple[float, float, float]:
    trainer: Any = SimpleNamespace(global_step=step, global_rank=rank)
    callback.on_train_batch_start(trainer, None, None, batch_idx)  # type: ignore[arg-type]
    return float(torch.rand(())), float(np.random.rand()), random.random()


def test_draws_follow_the_batch_not_the_history(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "3")
    callback = StepSeed()
    first = _draws(callback, step=5, batch_idx=2, rank=0)
    torch.rand(100), np.random.rand(7), random.random()  # anything in between (validation, previews)
    assert _draws(callback, step=5, batch_idx=2, rank=0) == first
    assert (
        len(
            {
                first,
                _draws(callback, step=6, batch_idx=3, rank=0),
                _draws(callback, step=5, batch_idx=2, rank=1),
            }
        )
        == 3
    )
    assert _draws(StepSeed(seed=3), step=5, batch_idx=2, rank=0) == first  # seed_everything's seed by default
    assert _draws(StepSeed(seed=4), step=5, batch_idx=2, rank=0) != first
