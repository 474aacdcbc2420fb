"""``TrainingETA``: print the estimated time left in training (bounded by ``max_steps`` and ``max_time``)."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.utilities import rank_zero_info


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class TrainingETA(L.Callback):
    """Prints the measured step rate and the time left, from the step rate after a few warm-up steps.

    The estimate is the smaller of (steps left x seconds per step) and what ``trainer.max_time`` leaves.

    Args:
        every_n_steps: print every this many optimizer steps (after the first estimate).
        warmup_steps: steps excluded from the rate (start-up, first batches, validation set-up).
    """

    def __init__(self, *, every_n_steps: int = 100, warmup_steps: int = 5) -> None:
        if every_n_steps < 1 or warmup_steps < 1:
            raise ValueError(
                f"every_n_steps and warmup_steps must be >= 1; got {every_n_steps}, {warmup_steps}"
            )
        self.every_n_steps = every_n_steps
        self.warmup_steps = warmup_steps
        self._mark: tuple[int, float] | None = None
        self._start = 0.0
        self.last_eta: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._mark = None

    def _time_left(self, trainer: L.Trainer) -> float | None:
        for cb in trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(cb, Timer):
                left = cb.time_remaining("train")
                return None if left is None else float(left)
        return None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = int(trainer.global_step)
        now = time.perf_counter()
        if self._mark is None:
            if step >= self.warmup_steps:
                self._mark = (step, now)
            return
        first_step, first_time = self._mark
        done = step - first_step
        if done <= 0 or (done != self.warmup_steps and done % self.every_n_steps):
            return
        per_step = (now - first_time) / done
        max_steps = int(trainer.max_steps)
        estimates = [] if max_steps < 0 else [per_step * (max_steps - step)]
        left = self._time_left(trainer)
        if left is not None:
            estimates.append(left)
        if not estimates:
            return
        self.last_eta = min(estimates)
        total = f"/{max_steps}" if max_steps >= 0 else ""
        rank_zero_info(
            f"[ETA] step {step}{total}: {per_step:.3f} s/step, elapsed {_clock(now - self._start)}, "
            f"about {_clock(self.last_eta)} left"
            + (" (max_time bound)" if left is not None and self.last_eta == left else "")
        )
