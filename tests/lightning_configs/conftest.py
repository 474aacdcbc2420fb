"""Tiny local stand-ins of exactly the classes the shipped configs name (EnCodec, T5, MERT-architecture
HuBERT), shards tokenized by that EnCodec, and converted released models to fine-tune."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fit_args import CARD, Assets, K
from tests.support.tiny_audiocraft import best_state, write_export, xp_config
from tests.support.tiny_hub import tiny_encodec, tiny_mert, tiny_t5


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    from stylecond.cli import main

    root = tmp_path_factory.mktemp("standins")
    encodec = tiny_encodec(root / "encodec_32khz", codebook_size=CARD, num_codebooks=K)
    shards = root / "shards"
    args = ["--synth", "12", "--seconds", "5", "--sample-rate", "32000", "--shard-size", "4", "--pretokenize",
            "--codec", f"encodec:{encodec}", "--out", str(shards)]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(["make-shards", *args])
    assert exit_info.value.code == 0
    return Assets(
        encodec=encodec, t5=tiny_t5(root / "t5-base"), mert=tiny_mert(root / "MERT-v1-95M"), shards=shards
    )


@pytest.fixture(scope="session")
def released(assets: Assets, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny MusicGen-Style and text MusicGen in audiocraft's layout, converted with `stylecond convert`."""
    from stylecond.models.conversion import convert

    root = tmp_path_factory.mktemp("released")
    parts = {"t5": str(assets.t5), "mert": str(assets.mert), "encodec": str(assets.encodec)}
    out: dict[str, Path] = {}
    for name, style in (("musicgen-style", True), ("musicgen-small", False)):
        cfg = xp_config(style=style, n_q=K, card=CARD, dim=32)
        src = write_export(root / f"audiocraft-{name}", cfg, best_state(cfg, seed=1))
        out[name] = convert(src, root / name, **parts).out_dir
    return out


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in ``tmp_path`` (runs/ goes there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
