from __future__ import annotations

import math

import pytest
import torch

from stylecond.metrics.embedders.base import AudioEmbedder, pool_frames


class _Energy(AudioEmbedder):
    """Mean power per channel and the clip length: enough to see resampling and chunking."""

    @property
    def sample_rate(self) -> int:
        return 1000

    @property
    def name(self) -> str:
        return "energy"

    @property
    def dim(self) -> int:
        return 2

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [wav.pow(2).mean(dim=(1, 2)), torch.full((wav.shape[0],), float(wav.shape[-1]))], -1
        )


def test_forward_resamples_and_validates() -> None:
    emb = _Energy()
    out = emb(torch.ones(2, 1, 2000), sample_rate=2000)  # 1 s at 2 kHz -> 1000 samples
    assert out.shape == (2, 2) and out[0, 1].item() == 1000
    assert emb(torch.ones(3, 500)).shape == (3, 2)  # [B, T] accepted
    assert not emb.train().training
    with pytest.raises(ValueError, match=r"\[B, T\] or \[B, C, T\]"):
        emb(torch.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        emb(torch.full((1, 1, 10), math.nan))
    with pytest.raises(ValueError, match="non-empty"):
        emb(torch.ones(1, 1, 0))
    with pytest.raises(ValueError, match="sample_rate"):
        emb(torch.ones(1, 1, 10), sample_rate=0)


def test_embed_chunks_shapes_and_values() -> None:
    emb = _Energy()
    wav = torch.cat([torch.ones(1, 1, 1000), 2 * torch.ones(1, 1, 1000), torch.ones(1, 1, 300)], -1)
    out = emb.embed_chunks(wav, 1.0)  # trailing 0.3 s dropped
    assert out.shape == (1, 2, 2)
    assert out[0, :, 0].tolist() == pytest.approx([1.0, 4.0])
    assert emb.embed_chunks(wav, 1.0, hop_seconds=0.5).shape == (1, 3, 2)
    short = emb.embed_chunks(torch.ones(2, 1, 300), 1.0)  # shorter than a chunk: one chunk
    assert short.shape == (2, 1, 2) and short[0, 0, 1].item() == 300
    with pytest.raises(ValueError, match="chunk_seconds"):
        emb.embed_chunks(wav, 0.0)


def test_pool_frames() -> None:
    h = torch.tensor([[[1.0], [3.0]]])
    assert pool_frames(h, "mean").item() == 2.0
    assert pool_frames(h, "max").item() == 3.0
    assert pool_frames(h, "cls").item() == 1.0
    with pytest.raises(ValueError, match="pooling"):
        pool_frames(h, "sum")
