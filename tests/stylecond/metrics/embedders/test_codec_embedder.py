from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from stylecond.codecs.base import AudioCodec
from stylecond.metrics.embedders.codec import CodecEmbedder


class _TinyCodec(AudioCodec):
    """Stand-in codec: 2 codebooks of 4 entries at 10 frames/s from a 1 kHz mono signal's sign/energy."""

    def __init__(self, with_latents: bool = False) -> None:
        super().__init__()
        self.proj = nn.Linear(100, 3)
        if with_latents:
            self.encode_latents = self._latents  # type: ignore[method-assign]

    sample_rate = 1000  # type: ignore[assignment]
    channels = 1  # type: ignore[assignment]
    frame_rate = 10.0  # type: ignore[assignment]
    num_codebooks = 2  # type: ignore[assignment]
    cardinality = 4  # type: ignore[assignment]
    codec_id = "tiny"  # type: ignore[assignment]

    def _frames(self, wav: Tensor) -> Tensor:
        t = wav.shape[-1] // 100 * 100
        return wav[:, 0, :t].reshape(wav.shape[0], -1, 100)  # [B, F, 100]

    def _latents(self, wav: Tensor) -> Tensor:
        return self.proj(self._frames(wav)).transpose(1, 2)  # [B, 3, F]

    def encode(self, wav: Tensor) -> Tensor:
        frames = self._frames(wav)
        c0 = (frames.mean(-1) > 0).long() + 2 * (frames.abs().mean(-1) > 1).long()
        c1 = torch.zeros_like(c0)
        return torch.stack([c0, c1], dim=1)  # [B, 2, F]

    def decode(self, codes: Tensor) -> Tensor:
        return torch.zeros(codes.shape[0], 1, codes.shape[-1] * 100)


def test_codes_histogram() -> None:
    emb = CodecEmbedder(codec=_TinyCodec())
    assert emb.representation == "codes" and emb.dim == 8 and emb.name == "codec:tiny:codes"
    wav = torch.cat([torch.full((1, 1, 300), 0.5), torch.full((1, 1, 100), -3.0)], -1)  # codes 1,1,1,2
    out = emb(torch.cat([wav, wav]).expand(2, 2, -1), sample_rate=1000)  # stereo is averaged
    assert out.shape == (2, 8)
    assert out[0].tolist() == pytest.approx([0, 0.75, 0.25, 0, 1, 0, 0, 0])
    assert "codec.proj.weight" not in emb.state_dict()


def test_latents_auto_and_errors() -> None:
    codec = _TinyCodec(with_latents=True)
    emb = CodecEmbedder(codec=codec, pooling="max")
    assert emb.representation == "latents" and emb.dim == 3
    wav = torch.randn(2, 1, 500)
    expected = codec._latents(wav).amax(-1)
    assert torch.allclose(emb(wav), expected)
    assert not any(p.requires_grad for p in codec.parameters())
    with pytest.raises(ValueError, match="encode_latents"):
        CodecEmbedder(codec=_TinyCodec(), representation="latents")
    with pytest.raises(ValueError, match="pooling"):
        CodecEmbedder(codec=_TinyCodec(), pooling="cls")  # type: ignore[arg-type]


def test_mel_codec_latents_are_pooled_log_mel() -> None:
    from stylecond.codecs.mel_codec import MelCodec

    codec = MelCodec(n_mels=8, n_fft=256, hop_length=160, num_codebooks=2, codebook_size=4)
    emb = CodecEmbedder(codec=codec)
    assert emb.representation == "latents" and emb.dim == 8
    wav = torch.randn(2, 1, 3200)
    assert torch.allclose(emb(wav), codec.features(wav).mean(dim=1))


def test_encodec_latents_from_tiny_random_model(tmp_path: Path) -> None:
    from transformers import EncodecConfig, EncodecModel

    from stylecond.codecs.encodec import EncodecCodec

    config = EncodecConfig(
        sampling_rate=3200,
        upsampling_ratios=[4, 4],
        hidden_size=8,
        num_filters=4,
        codebook_size=64,
        codebook_dim=8,
        num_lstm_layers=1,
        target_bandwidths=[1.2, 2.4],
        kernel_size=3,
        last_kernel_size=3,
        residual_kernel_size=3,
    )
    EncodecModel(config).save_pretrained(tmp_path / "enc")
    emb = CodecEmbedder(codec=EncodecCodec(model_name_or_path=str(tmp_path / "enc"), local_files_only=True))
    assert emb.representation == "latents"
    out = emb(torch.randn(2, 1, 1600), sample_rate=16000)  # resampled to 3.2 kHz
    assert out.shape == (2, 8) and emb.dim == 8 and torch.isfinite(out).all()
    codes = CodecEmbedder(codec=emb.codec, representation="codes")
    hist = codes(torch.randn(1, 1, 640))
    assert hist.shape == (1, codes.dim) and hist.sum().item() == pytest.approx(emb.codec.num_codebooks)
