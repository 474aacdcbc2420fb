"""The cosine schedule's length: trainer.max_steps, or epochs of the WebDataset datamodule, or optim.total_steps."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from torch.optim.lr_scheduler import LambdaLR

from stylecond.models.style_musicgen import StyleMusicGen
from stylecond.training.cli import run_lightning_cli


class _Stop(Exception):
    pass


def schedule_length(scheduler: LambdaLR) -> int:
    """``total_steps`` of a warm-up-free, min-0 cosine schedule, read back from its factor at step 1."""
    factor = scheduler.lr_lambdas[0](1)
    return round(math.pi / math.acos(2.0 * factor - 1.0))


def test_schedule_length_read_back() -> None:
    import torch

    from stylecond.utils.optim import cosine_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert schedule_length(cosine_with_warmup(opt, warmup_steps=0, total_steps=37)) == 37


@pytest.fixture()
def schedule_of(
    debug_args: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Callable[..., int]:
    """Run ``fit`` on debug.yaml up to the first step and return the scheduler's total_steps."""
    monkeypatch.chdir(tmp_path)

    def run(*extra: str) -> int:
        seen: list[int] = []

        def stop(self: StyleMusicGen) -> None:
            scheduler = self.lr_schedulers()
            assert isinstance(scheduler, LambdaLR)
            seen.append(schedule_length(scheduler))
            raise _Stop

        monkeypatch.setattr(StyleMusicGen, "on_train_start", stop)
        args = ("--model.init_args.optim.warmup_steps", "0", "--trainer.limit_val_batches", "0", *extra)
        with pytest.raises(_Stop):
            run_lightning_cli(["fit", *debug_args(*args)])
        return seen[0]

    return run


@pytest.mark.slow
def test_total_steps_from_max_steps_epochs_and_config(schedule_of: Callable[..., int]) -> None:
    assert schedule_of("--trainer.max_steps", "7") == 7
    # debug.yaml: samples_per_epoch 40 / batch_size 4 = 10 batches per epoch
    epochs = ("--trainer.max_steps", "-1", "--trainer.max_epochs", "3")
    assert schedule_of(*epochs) == 30
    assert schedule_of(*epochs, "--trainer.accumulate_grad_batches", "2") == 15
    assert schedule_of(*epochs, "--model.init_args.optim.total_steps", "12") == 12


@pytest.mark.slow
def test_unbounded_run_needs_a_schedule_length(schedule_of: Callable[..., int]) -> None:
    unbounded = ("--trainer.max_steps", "-1", "--trainer.max_epochs", "-1")
    with pytest.raises(ValueError, match="finite length"):
        schedule_of(*unbounded)
    assert schedule_of(*unbounded, "--model.init_args.optim.total_steps", "9") == 9
