"""A local hub cache serving audiocraft releases and their parts by hub name; a reference recording."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest

from tests.support.tiny_audiocraft import best_state, write_export, xp_config
from tests.support.tiny_hub import fake_hub, snapshot


@pytest.fixture()
def audiocraft_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache with the stand-ins and facebook/musicgen-style at two revisions: main (eval_q 2) and
    the tag v1 (eval_q 1)."""
    cache = fake_hub(tmp_path / "hub")
    for commit, ref, eval_q in (("a" * 40, "main", 2), ("b" * 40, "v1", 1)):
        cfg = xp_config(eval_q=eval_q)
        write_export(snapshot(cache, "facebook/musicgen-style", commit=commit, ref=ref), cfg, best_state(cfg))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture()
def ref_wav(tmp_path: Path) -> Path:
    """4 s of synthetic techno at 32 kHz, as a WAV file."""
    from datamodules.synth import SynthStyles
    from stylecond.audio import save_audio

    path = tmp_path / "ref.wav"
    save_audio(path, SynthStyles(sample_rate=32000).clip("techno", seconds=4.0, seed=0).audio, 32000)
    return path
