"""Two-process CPU DDP (gloo, ddp_spawn) on debug.yaml: every rank ends with the same weights and buffers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from safetensors.torch import load_file, save_file


class RankStateDump(L.Callback):
    """Write each rank's full state (parameters and buffers) to ``<out_dir>/rank<r>.safetensors`` at the end."""

    def __init__(self, *, out_dir: str) -> None:
        self.out_dir = out_dir

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = {k: v.detach().cpu().contiguous().clone() for k, v in pl_module.state_dict().items()}
        save_file(state, str(Path(self.out_dir) / f"rank{trainer.global_rank}.safetensors"))


@pytest.mark.slow
def test_ddp_ranks_keep_identical_codebooks_and_batchnorm_stats(
    debug_args: Callable[..., list[str]], debug_shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylecond.cli import main

    monkeypatch.chdir(tmp_path)
    dump = f"{RankStateDump.__module__}.{RankStateDump.__qualname__}"
    extra = [
        "--trainer.strategy=ddp_spawn",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
        "--trainer.max_steps=3",
        "--trainer.val_check_interval=3",  # one validation (and generation preview, on rank 0 only)
        f"--data.init_args.val_shards={debug_shards}/shard-{{000001..000002}}.tar",  # one shard per rank
        "--trainer.use_distributed_sampler=false",
        f"--trainer.callbacks+={dump}",
        f"--trainer.callbacks.out_dir={tmp_path}",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *debug_args(*extra)])
    assert exit_info.value.code in (0, None)
    states: list[dict[str, Any]] = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    assert states[0].keys() == states[1].keys()
    keys = sorted(states[0])
    buffers = [k for k in keys if ".rvq." in k or "batch_norm." in k]
    assert any(k.startswith("style_conditioner.rvq.") and k.endswith(".embed") for k in buffers)
    assert "style_conditioner.batch_norm.running_var" in buffers
    # the style bottleneck was trained: codebooks initialised, BN statistics moved off their defaults
    assert bool(states[0]["style_conditioner.rvq.layers.0.inited"])
    assert int(states[0]["style_conditioner.batch_norm.num_batches_tracked"]) == 3
    assert not torch.allclose(states[0]["style_conditioner.batch_norm.running_var"], torch.ones(1))
    mismatched = [k for k in keys if not torch.equal(states[0][k], states[1][k])]
    assert not mismatched, f"ranks differ on {mismatched}"
    previews = sorted(p.name for p in tmp_path.glob("runs/debug/version_0/previews/step_0000003/*.wav"))
    assert len(previews) == 8, previews  # rank 0 generated while rank 1 waited (no deadlock)
