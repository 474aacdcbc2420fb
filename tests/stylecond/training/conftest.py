"""Shards and a fitted MelCodec for running lightning_configs/debug.yaml through the real CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from datamodules.synth import SynthStyles
from stylecond.codecs.mel_codec import MelCodec

DEBUG_YAML = Path(__file__).resolve().parents[3] / "lightning_configs" / "debug.yaml"


@pytest.fixture(scope="session")
def debug_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic 2 s clips in 3 shards of 4: shards 0-1 train, shard 2 validation."""
    from stylecond.cli import main

    out = tmp_path_factory.mktemp("shards")
    args = ["--synth", "12", "--seconds", "2", "--sample-rate", "16000", "--shard-size", "4"]
    with pytest.raises(SystemExit) as exit_info:
        main(["make-shards", *args, "--out", str(out)])
    assert exit_info.value.code == 0
    return out


@pytest.fixture(scope="session")
def debug_codec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MelCodec (4 x 16) fitted on a few SynthStyles clips and saved."""
    clips = [c.audio for c in SynthStyles(sample_rate=16000, seed=0).clips(8, seconds=1.0, seed=1)]
    codec = MelCodec(num_codebooks=4, codebook_size=16, kmeans_iters=3, griffin_lim_iters=2).fit(clips)
    return codec.save(tmp_path_factory.mktemp("mel_codec"))


@pytest.fixture()
def debug_args(debug_shards: Path, debug_codec: Path) -> Callable[..., list[str]]:
    """``debug_args(*extra)``: ``fit`` options running debug.yaml on the test shards and codec."""

    def make(*extra: str) -> list[str]:
        return [
            "-c",
            str(DEBUG_YAML),
            "--model.init_args.codec.init_args.weights",
            str(debug_codec),
            "--model.init_args.codec.init_args.codebook_size",
            "16",
            "--model.init_args.codec.init_args.griffin_lim_iters",
            "2",
            "--data.init_args.train_shards",
            str(debug_shards / "shard-{000000..000001}.tar"),
            "--data.init_args.val_shards",
            str(debug_shards / "shard-000002.tar"),
            "--trainer.enable_progress_bar",
            "false",
            *extra,
        ]

    return make
