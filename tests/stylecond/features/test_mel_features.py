"""MelFeatures: shapes, frame rate, normalisation, weight-free and bad input."""

from __future__ import annotations

import pytest
import torch

from stylecond.features import MelFeatures


def test_shapes_and_frame_rate() -> None:
    feat = MelFeatures(sample_rate=16000, n_mels=32, hop_length=320)
    wav = torch.randn(2, 2, 16000) * 0.1
    out = feat(wav)
    assert feat.frame_rate == 50.0 and feat.dim == 32 and feat.frozen
    assert out.shape == (2, feat.num_frames(16000), 32) == (2, 51, 32)
    assert torch.isfinite(out).all()
    assert feat.state_dict() == {} and not list(feat.parameters())


def test_fixed_normalisation_is_affine() -> None:
    wav = torch.randn(1, 1, 8000) * 0.1
    a = MelFeatures(n_mels=16, mean=0.0, std=1.0)(wav)
    b = MelFeatures(n_mels=16, mean=2.0, std=4.0)(wav)
    assert torch.allclose(b, (a - 2.0) / 4.0, atol=1e-5)


def test_bad_input() -> None:
    feat = MelFeatures(n_mels=16)
    with pytest.raises(ValueError, match="wav"):
        feat(torch.randn(16000))
    with pytest.raises(ValueError, match="std"):
        MelFeatures(std=0.0)
