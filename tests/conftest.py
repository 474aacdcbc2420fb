"""Test-wide settings: no model hub, small thread count, deterministic seeds."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------- lightning_configs/debug.yaml through the real CLI
DEBUG_YAML = Path(__file__).resolve().parents[1] / "lightning_configs" / "debug.yaml"


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
    from datamodules.synth import SynthStyles
    from stylecond.codecs.mel_codec import MelCodec

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


# --------------------------------------------------- a real, small export on disk (checked in)
LEGACY_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy_export"


@pytest.fixture(scope="session")
def legacy_export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``tests/fixtures/legacy_export/export`` whose config points at the fixture's MelCodec."""
    import shutil

    import yaml

    export = tmp_path_factory.mktemp("legacy") / "export"
    shutil.copytree(LEGACY_FIXTURE / "export", export)
    config = yaml.safe_load((export / "config.yaml").read_text())
    config["init_args"]["codec"]["init_args"]["weights"] = str(LEGACY_FIXTURE / "mel_codec")
    (export / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return export
