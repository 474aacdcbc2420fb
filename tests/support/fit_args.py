"""Arguments and stand-ins for fitting the shipped configs in tests (tests/lightning_configs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[2] / "lightning_configs"
K, CARD = 4, 32  # the tiny EnCodec: 4 codebooks (as encodec_32khz) of 32 entries, 50 Hz at 32 kHz


@dataclass(frozen=True)
class Assets:
    encodec: Path
    t5: Path
    mert: Path
    shards: Path  # shard-000000..000002: 4 clips of 5 s each at 32 kHz, with codes.npy

    @property
    def train(self) -> str:
        return str(self.shards / "shard-{000000..000001}.tar")

    @property
    def val(self) -> str:
        return str(self.shards / "shard-000002.tar")


def hub_overrides(a: Assets) -> list[str]:
    """small.yaml / medium.yaml: point EnCodec, T5 and MERT at the stand-ins; tiny sizes; the test data."""
    m, s = "--model.init_args", "--model.init_args.style_conditioner.init_args"
    return [
        f"{m}.codec.init_args.model_name_or_path={a.encodec}",
        f"{m}.lm.init_args.card={CARD}", f"{m}.lm.init_args.dim=32", f"{m}.lm.init_args.num_heads=2",
        f"{m}.lm.init_args.num_layers=2",
        f"{m}.text_conditioner.init_args.model_name_or_path={a.t5}",
        f"{s}.extractor.init_args.model_name_or_path={a.mert}",
        f"{s}.dim=32", f"{s}.num_layers=1", f"{s}.num_heads=2", f"{s}.ffn_dim=64", f"{s}.codebook_size=16",
        *data_overrides(a),
    ]  # fmt: skip


def data_overrides(a: Assets) -> list[str]:
    d = "--data.init_args"
    return [f"{d}.train_shards={a.train}", f"{d}.val_shards={a.val}", f"{d}.segment_seconds=4.0",
            f"{d}.batch_size=2", f"{d}.num_workers=0", f"{d}.samples_per_epoch=8"]  # fmt: skip


def run_overrides(steps: int = 4) -> list[str]:
    """A few steps with a validation half-way and at the end; CPU; no progress bar."""
    return [f"--trainer.max_steps={steps}", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=1",
            "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"]  # fmt: skip


def child_env() -> dict[str, str]:
    """Environment of ``stylecond`` child processes: offline, the repository importable."""
    root = str(CONFIG_DIR.parent)
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
