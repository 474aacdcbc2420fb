from __future__ import annotations

import pytest
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from datamodules.batch import AudioBatch, AudioSample, collate


def _sample(key: str, t: int = 8, style: bool = True) -> AudioSample:
    return AudioSample(
        key=key, text=f"t{key}", sample_rate=100, audio=torch.randn(2, t), audio_mask=torch.ones(t, dtype=torch.bool),
        codes=torch.zeros(3, 4, dtype=torch.long), codes_mask=torch.ones(4, dtype=torch.bool),
        style_audio=torch.zeros(2, 5) if style else None, style_mask=torch.zeros(5, dtype=torch.bool) if style else None,
        has_style=key == "a", metadata={"k": key},
    )  # fmt: skip


def test_collate_shapes() -> None:
    batch = collate([_sample("a"), _sample("b")], frame_rate=50.0)
    assert batch.audio is not None and batch.audio.shape == (2, 2, 8)
    assert batch.audio_mask is not None and batch.audio_mask.shape == (2, 8)
    assert batch.codes is not None and batch.codes.shape == (2, 3, 4) and batch.codes.dtype == torch.long
    assert batch.style_audio is not None and batch.style_audio.shape == (2, 2, 5)
    assert batch.has_style is not None and batch.has_style.tolist() == [True, False]
    assert batch.texts == ["ta", "tb"] and batch.keys == ["a", "b"] and len(batch) == 2
    assert batch.sample_rate == 100 and batch.frame_rate == 50.0 and batch.metadata[1] == {"k": "b"}


def test_collate_rejects_mismatches() -> None:
    with pytest.raises(ValueError, match="'audio' has different shapes"):
        collate([_sample("a", t=8), _sample("b", t=9)])
    with pytest.raises(ValueError, match="'style_audio' is set on some samples"):
        collate([_sample("a"), _sample("b", style=False)])
    with pytest.raises(ValueError, match="at least one"):
        collate([])


def test_lightning_moves_the_batch() -> None:
    batch = collate([_sample("a"), _sample("b")])
    moved = move_data_to_device(batch, torch.device("meta"))
    assert isinstance(moved, AudioBatch)
    assert moved.audio is not None and moved.audio.device.type == "meta"
    assert moved.has_style is not None and moved.has_style.device.type == "meta"
    assert moved.texts == ["ta", "tb"] and moved.sample_rate == 100
    assert batch.audio is not None and batch.audio.device.type == "cpu"  # original untouched
