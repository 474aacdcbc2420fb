from __future__ import annotations

import torch

from stylecond.metrics.embedders.mel_stats import MelStatsEmbedder


def test_mel_stats_embedder() -> None:
    emb = MelStatsEmbedder(sample_rate=8000, n_mels=16, n_fft=256, hop_length=128)
    assert emb.dim == 64 and emb.name == "mel_stats:8k:16"
    loud, quiet = torch.randn(1, 2, 4000), 0.01 * torch.randn(1, 2, 4000)
    out = emb(torch.cat([loud, quiet]))
    assert out.shape == (2, 64) and torch.isfinite(out).all()
    assert (out[0, :16] > out[1, :16]).all()  # louder -> higher mean log-mel in every band
    # Deterministic and rate-aware: same audio given at 16 kHz is resampled.
    assert torch.allclose(emb(loud), emb(loud), atol=0)
    up = torch.nn.functional.interpolate(loud, scale_factor=2, mode="linear")
    assert emb(up, sample_rate=16000).shape == (1, 64)
    assert emb(torch.randn(1, 1, 10)).shape == (1, 64)  # very short input still works
    assert emb.state_dict() == {}
