from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor

from stylecond.metrics.style_classifier import NearestCentroidStyleClassifier

SR = 8000


def _tone(freq: float, seconds: float = 0.5, seed: int = 0) -> Tensor:
    """A slightly detuned sine with random phase plus a little noise, ``[1, T]``."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    f = freq * (1 + 0.03 * (torch.rand(1, generator=g).item() - 0.5))
    phase = 2 * math.pi * torch.rand(1, generator=g).item()
    return (0.5 * torch.sin(2 * math.pi * f * t + phase) + 0.01 * torch.randn(len(t), generator=g)).unsqueeze(
        0
    )


def _noise(seconds: float = 0.5, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(1, int(seconds * SR), generator=g)


def _dataset(seed: int, n: int = 3) -> tuple[list[Tensor], list[str]]:
    wavs, labels = [], []
    for i in range(n):
        s = seed * 100 + i
        wavs += [_tone(200, seed=s), _tone(2000, seed=s), _noise(seed=s)]
        labels += ["low", "high", "noise"]
    return wavs, labels


def test_fit_predict_score_on_held_out() -> None:
    clf = NearestCentroidStyleClassifier(sample_rate=SR, n_mels=32)
    assert not clf.fitted
    assert clf.fit(*_dataset(0)) is clf and clf.fitted
    assert clf.classes == ["high", "low", "noise"]
    wavs, labels = _dataset(1)
    assert clf.predict(wavs) == labels
    assert clf.score(wavs, labels) == 1.0
    assert clf.score(wavs, ["low"] * len(labels)) == pytest.approx(1 / 3)


def test_batched_tensor_mixed_lengths_stereo_and_short_clips() -> None:
    clf = NearestCentroidStyleClassifier(sample_rate=SR, n_mels=32).fit(*_dataset(0))
    batch = torch.stack([_tone(200, seed=7), _tone(2000, seed=7)])  # [2, 1, T]
    assert clf.predict(batch) == ["low", "high"]
    stereo = _tone(2000, seed=8).repeat(2, 1)  # [2, T]
    mixed = [_tone(200, seconds=0.3, seed=9), stereo, _noise(seconds=0.9, seed=9)]
    assert clf.predict(mixed) == ["low", "high", "noise"]
    assert clf.features(mixed).shape == (3, 3 * 32)
    tiny = _tone(200, seconds=0.01, seed=3)  # shorter than the STFT window: zero-padded
    assert clf.features([tiny]).isfinite().all()


def test_save_load_round_trip(tmp_path: Path) -> None:
    clf = NearestCentroidStyleClassifier(sample_rate=SR, n_mels=16).fit(*_dataset(0))
    path = tmp_path / "clf.json"
    clf.save(path)
    loaded = NearestCentroidStyleClassifier.load(path)
    wavs, _ = _dataset(2)
    assert loaded.classes == clf.classes
    assert torch.allclose(loaded.distances(wavs), clf.distances(wavs))
    (tmp_path / "bad.json").write_text('{"sample_rate": 8000}')
    with pytest.raises(ValueError, match="bad.json"):
        NearestCentroidStyleClassifier.load(tmp_path / "bad.json")


def test_errors() -> None:
    clf = NearestCentroidStyleClassifier(sample_rate=SR, n_mels=16)
    with pytest.raises(RuntimeError, match="not fitted"):
        clf.predict([_noise()])
    with pytest.raises(ValueError, match="labels"):
        clf.fit([_noise(), _noise(seed=1)], ["a"])
    with pytest.raises(ValueError, match="at least one"):
        clf.fit([], [])
    with pytest.raises(ValueError, match=r"wavs\[1\]"):
        clf.fit([_noise(), torch.zeros(1, 0)], ["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        clf.fit([torch.full((1, 100), float("nan"))], ["a"])
    with pytest.raises(ValueError, match=r"\[B, C, T\]"):
        clf.fit(torch.zeros(2, 100), ["a", "b"])
    with pytest.raises(ValueError, match="n_mels"):
        NearestCentroidStyleClassifier(n_mels=0)
