from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stylecond.audio import save_audio
from stylecond.evaluation.references import ReferenceSet, find_label, load_references

SR = 16000


def test_from_shards(synth_shards: str) -> None:
    refs = load_references(synth_shards, num_samples=4, sample_rate=SR, max_seconds=1.5, min_seconds=1.0)
    assert len(refs) == 4 and refs.sample_rate == SR
    assert refs.track_ids == [f"synth_{i:07d}" for i in range(4)]
    assert refs.labels == ["chiptune", "ambient", "piano_ballad", "techno"]
    assert all(t.shape == (1, round(1.5 * SR)) for t in refs.tracks)
    assert all(text for text in refs.texts)
    assert refs.excerpts([0, 2], 1.0).shape == (2, 1, SR)
    assert refs.summary()["count"] == 4


def test_from_folder_with_sidecars(tmp_path: Path) -> None:
    for i, label in enumerate(["rock", "jazz", "rock"]):
        save_audio(tmp_path / f"t{i}.wav", 0.1 * torch.randn(1, SR * 2), SR)
        (tmp_path / f"t{i}.json").write_text(json.dumps({"text": f"song {i}", "genre": label}))
    save_audio(tmp_path / "short.wav", 0.1 * torch.randn(1, SR // 4), SR)  # shorter than min_seconds: skipped
    refs = load_references(tmp_path, num_samples=10, sample_rate=8000, min_seconds=1.0)
    assert refs.track_ids == ["t0.wav", "t1.wav", "t2.wav"] and refs.texts == ["song 0", "song 1", "song 2"]
    assert refs.labels == ["rock", "jazz", "rock"] and refs.tracks[0].shape == (1, 16000)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--data: .* no audio files"):
        load_references(tmp_path, num_samples=1, sample_rate=SR)
    with pytest.raises(ValueError, match="--num-samples"):
        load_references(tmp_path, num_samples=0, sample_rate=SR)
    with pytest.raises(ValueError, match="unique"):
        ReferenceSet(tracks=[torch.zeros(1, 4)] * 2, texts=["a", "b"], track_ids=["x", "x"], sample_rate=SR)


def test_find_label() -> None:
    assert find_label({"synth": {"style": "funk"}, "genre": "g"}) == "funk"
    assert find_label({"genre": "g"}) == "g"
    assert find_label({"style": ""}) is None
    assert find_label({"meta": {"bpm": 120}}, ["meta.bpm"]) == "120"
