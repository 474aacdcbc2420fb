from __future__ import annotations

import math

import pytest
import torch

from stylecond.metrics.embedders.mel_stats import MelStatsEmbedder
from stylecond.metrics.fad import FrechetAudioDistance, frechet_distance


def _gaussian(n: int, mean: torch.Tensor, std: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return mean + std * torch.randn(n, mean.numel(), generator=g, dtype=torch.float64)


def test_same_gaussian_gives_near_zero() -> None:
    mean, std = torch.tensor([1.0, -2.0, 0.5, 3.0]).double(), torch.tensor([1.0, 2.0, 0.5, 1.5]).double()
    fad = FrechetAudioDistance()
    for i in range(4):  # several batches: the sums must accumulate
        fad.update(_gaussian(10000, mean, std, seed=i), real=True)
        fad.update(_gaussian(10000, mean, std, seed=100 + i), real=False)
    assert 0 <= fad.compute().item() < 2e-3


def test_matches_closed_form_for_diagonal_gaussians() -> None:
    mu1, mu2 = torch.tensor([0.0, 1.0, -1.0]).double(), torch.tensor([2.0, 1.0, 0.0]).double()
    var1, var2 = torch.tensor([1.0, 4.0, 0.25]).double(), torch.tensor([9.0, 1.0, 0.25]).double()
    expected = ((mu1 - mu2) ** 2).sum() + (
        var1 + var2 - 2 * (var1 * var2).sqrt()
    ).sum()  # = 5 + 4 + 1 + 0 = 10
    exact = frechet_distance(mu1, torch.diag(var1), mu2, torch.diag(var2))
    assert exact.item() == pytest.approx(expected.item(), abs=1e-9)
    fad = FrechetAudioDistance(dim=3)
    fad(_gaussian(100000, mu1, var1.sqrt(), seed=1), real=True)  # forward() only accumulates
    fad.update(_gaussian(100000, mu2, var2.sqrt(), seed=2), real=False)
    assert fad.compute().item() == pytest.approx(expected.item(), rel=0.02)


def test_frechet_distance_matches_scipy_for_full_covariances() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(6, 6, generator=g).double(), torch.randn(6, 6, generator=g).double()
    s1, s2 = a @ a.T, b @ b.T + 0.1 * torch.eye(6).double()
    mu1, mu2 = torch.randn(6, generator=g).double(), torch.randn(6, generator=g).double()
    covmean = linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    ref = float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * covmean.trace())
    assert frechet_distance(mu1, s1, mu2, s2).item() == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(mu1, s1, mu1, s1).item() == pytest.approx(0.0, abs=1e-6)


def test_waveforms_through_embedder_equal_precomputed_embeddings() -> None:
    emb = MelStatsEmbedder(sample_rate=8000, n_mels=8, n_fft=256, hop_length=128)
    wav_r, wav_f = torch.randn(5, 1, 4000), 0.3 * torch.randn(6, 1, 4000)
    a = FrechetAudioDistance(embedder=emb)
    a.update(wav_r, real=True, sample_rate=8000)
    a.update(wav_f, real=False, sample_rate=8000)
    b = FrechetAudioDistance()
    b.update(emb(wav_r), real=True)
    b.update(emb(wav_f), real=False)
    assert a.compute().item() == pytest.approx(b.compute().item(), rel=1e-6)
    assert a.compute().item() > 0
    assert a.embedding_name == "mel_stats:8k:8"
    chunked = FrechetAudioDistance(embedder=emb, chunk_seconds=0.1)
    chunked.update(wav_r, real=True)
    assert chunked.real_n.item() == 5 * 5  # 0.5 s clips -> 5 chunks each
    a.reset()
    assert a.real_n.item() == 0


def test_errors_are_explicit() -> None:
    fad = FrechetAudioDistance()
    with pytest.raises(ValueError, match="no embedder"):
        fad.update(torch.randn(2, 1, 100), real=True)
    fad.update(torch.randn(3, 4), real=True)
    with pytest.raises(ValueError, match="differs"):
        fad.update(torch.randn(3, 5), real=False)
    fad.update(torch.randn(1, 4), real=False)
    with pytest.raises(ValueError, match="at least 2 fake"):
        fad.compute()
    with pytest.raises(ValueError, match="NaN"):
        fad.update(torch.full((2, 4), math.nan), real=True)
    with pytest.raises(ValueError, match="dim"):
        FrechetAudioDistance(dim=0)
