"""DDP with paired style data: ranks with different mixes of paired rows make the same collective calls."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy

from stylecond.training.cli import run_lightning_cli
from tests.support.paired_batches import RankMixedPairs
from tests.support.rank_state import RankReport


@pytest.mark.slow
def test_all_paired_rank_and_mixed_rank_train_in_step(
    debug_args: Callable[..., list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model = run_lightning_cli(debug_args(), run=False).model
    # a collective made by one rank only would wait for the other until this timeout, then fail the fit
    strategy = DDPStrategy(start_method="spawn", process_group_backend="gloo", timeout=timedelta(seconds=60))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_steps=3, limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, use_distributed_sampler=False,
                        callbacks=[RankReport(out_dir=str(tmp_path))])  # fmt: skip
    trainer.fit(model, datamodule=RankMixedPairs(batches=3, batch_size=4))
    reports = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True)["buffers"] for r in (0, 1)]
    codebooks = [k for k in reports[0] if k.startswith("style_conditioner.rvq.") and k.endswith(".embed")]
    assert codebooks and bool(reports[0]["style_conditioner.rvq.layers.0.inited"])
    assert int(reports[0]["style_conditioner.batch_norm.num_batches_tracked"]) == 3
    differing = [k for k in reports[0] if not torch.equal(reports[0][k], reports[1][k])]
    assert not differing, f"ranks differ on {differing}"
