"""EncodecFeatures: summed per-codebook embeddings of codec tokens; codec frozen and not checkpointed."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from stylecond.codecs.base import AudioCodec
from stylecond.features import EncodecFeatures


class TinyCodec(AudioCodec):
    """Stand-in codec: 8 kHz mono, 50 Hz, 4 codebooks x 16 from a random projection of each frame."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(160, 4)

    sample_rate = 8000  # type: ignore[assignment]
    channels = 1  # type: ignore[assignment]
    frame_rate = 50.0  # type: ignore[assignment]
    num_codebooks = 4  # type: ignore[assignment]
    cardinality = 16  # type: ignore[assignment]
    codec_id = "tiny"  # type: ignore[assignment]

    def encode(self, wav: Tensor) -> Tensor:
        wav = self._check_wav(wav)
        frames = nn.functional.pad(wav[:, 0], (0, -wav.shape[-1] % 160)).unfold(-1, 160, 160)  # [B, F, 160]
        return (torch.sigmoid(self.proj(frames) * 10) * 15.999).long().transpose(1, 2)  # [B, 4, F]

    def decode(self, codes: Tensor) -> Tensor:
        return torch.zeros(codes.shape[0], 1, codes.shape[-1] * 160)


def test_tokens_embedded_and_summed() -> None:
    codec = TinyCodec()
    feat = EncodecFeatures(codec=codec, num_codebooks=3, dim=8)
    wav = torch.randn(2, 1, 8000)
    out = feat(wav)
    assert out.shape == (2, 50, 8) and feat.frame_rate == 50.0 and feat.sample_rate == 8000
    codes = codec.encode(wav)
    expected = sum(feat.embeddings[k](codes[:, k]) for k in range(3))
    assert torch.allclose(out, expected)
    out.sum().backward()
    assert feat.embeddings[0].weight.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in codec.parameters())


def test_codec_excluded_from_state_dict_and_frozen() -> None:
    feat = EncodecFeatures(codec=TinyCodec(), num_codebooks=2, dim=8)
    keys = set(feat.state_dict())
    assert keys == {"embeddings.0.weight", "embeddings.1.weight"}
    feat.load_state_dict(feat.state_dict())  # strict load without codec keys works
    feat.train()
    assert not feat.codec.training and feat.embeddings.training
    assert not feat.frozen


def test_too_many_codebooks() -> None:
    with pytest.raises(ValueError, match=r"1\.\.4"):
        EncodecFeatures(codec=TinyCodec(), num_codebooks=5, dim=8)
