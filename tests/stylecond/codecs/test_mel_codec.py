"""MelCodec: fit / encode / decode / save / load on tiny synthetic audio."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from datamodules.synth import SynthStyles
from stylecond.audio import AudioError
from stylecond.codecs.base import AudioCodec
from stylecond.codecs.mel_codec import MelCodec, kmeans
from stylecond.quantization.rvq_bottleneck import RVQBottleneck

SR = 16000
SMALL = dict(num_codebooks=4, codebook_size=32, kmeans_iters=4, griffin_lim_iters=4, inversion_iters=5)


@pytest.fixture(scope="module")
def audio() -> list[torch.Tensor]:
    synth = SynthStyles(sample_rate=SR, seed=0)
    return [c.audio for c in synth.clips(6, seconds=1.0)]


@pytest.fixture(scope="module")
def codec(audio: list[torch.Tensor]) -> MelCodec:
    return MelCodec(**SMALL).fit(audio)


def _mae(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().mean().item()


def test_properties(codec: MelCodec) -> None:
    assert isinstance(codec, AudioCodec) and isinstance(codec.rvq, RVQBottleneck)
    assert (codec.sample_rate, codec.channels, codec.frame_rate, codec.hop_length) == (SR, 1, 50.0, 320)
    assert (codec.num_codebooks, codec.cardinality) == (4, 32)
    assert codec.bitrate == pytest.approx(4 * 5 * 50)
    assert codec.codebooks.shape == (4, 32, 80)
    assert codec.codec_id.startswith("mel:16000:320:1024:80:4x32:") and "unfitted" not in codec.codec_id
    assert [codec.num_frames(n) for n in (1, 320, 321, 16000)] == [1, 1, 2, 50]
    assert not any(p.requires_grad for p in codec.parameters())
    codec.train()
    assert not codec.training and not codec.rvq.training


def test_encode_decode_shapes_and_range(codec: MelCodec, audio: list[torch.Tensor]) -> None:
    wav = torch.stack(audio[:2])[..., :7000]  # [2, 1, 7000]: not a multiple of the hop
    codes = codec.encode(wav)
    assert codes.dtype == torch.long and codes.shape == (2, 4, math.ceil(7000 / 320))
    assert int(codes.min()) >= 0 and int(codes.max()) < 32
    assert codes[:, 0].unique().numel() > 4  # the first codebook is really used
    out = codec.decode(codes)
    assert out.shape == (2, 1, 22 * 320) and torch.isfinite(out).all()
    assert torch.equal(codec.decode(codes), out)  # deterministic Griffin-Lim
    assert codec.encode(wav, num_codebooks=2).shape == (2, 2, 22)
    assert codec.decode(codes[:, :2]).shape == (2, 1, 22 * 320)
    stereo = wav.expand(2, 2, 7000)
    assert torch.equal(codec.encode(stereo), codes)  # mixed down to mono
    short = codec.encode(wav[..., :100])  # shorter than n_fft // 2 still works
    assert short.shape == (2, 4, 1)


def test_error_falls_with_more_codebooks(codec: MelCodec, audio: list[torch.Tensor]) -> None:
    wav = torch.stack(audio)
    ref = codec.features(wav)
    errors = [_mae(codec.decode_features(codec.encode(wav, num_codebooks=k)), ref) for k in (1, 2, 3, 4)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    mean_frame = _mae(ref.mean(dim=(0, 1), keepdim=True), ref)
    assert errors[-1] < 0.5 * mean_frame
    # the waveform round trip (inversion + Griffin-Lim) keeps far more than white noise does
    rt = codec.features(codec.decode(codec.encode(wav)))
    noise = torch.randn(wav.shape, generator=torch.Generator().manual_seed(0)) * wav.std()
    assert _mae(rt, ref) < 0.5 * _mae(codec.features(noise), ref)


def test_fit_is_deterministic_and_save_load_round_trips(
    codec: MelCodec, audio: list[torch.Tensor], tmp_path: Path
) -> None:
    again = MelCodec(**SMALL).fit(audio)
    assert torch.equal(again.codebooks, codec.codebooks) and again.codec_id == codec.codec_id
    other_seed = MelCodec(**SMALL, seed=1).fit(audio)
    assert other_seed.codec_id != codec.codec_id
    codec.save(tmp_path / "codec")
    assert {p.name for p in (tmp_path / "codec").iterdir()} == {"mel_codec.json", "mel_codec.safetensors"}
    loaded = MelCodec.load(tmp_path / "codec")
    assert loaded.codec_id == codec.codec_id and loaded.config == codec.config
    wav = torch.stack(audio[:2])
    codes = codec.encode(wav)
    assert torch.equal(loaded.encode(wav), codes)
    assert torch.equal(loaded.decode(codes), codec.decode(codes))


def test_errors(audio: list[torch.Tensor], codec: MelCodec, tmp_path: Path) -> None:
    fresh = MelCodec(**SMALL)
    assert fresh.codec_id.endswith(":unfitted")
    with pytest.raises(RuntimeError, match="fit"):
        fresh.encode(torch.zeros(1, 1, 1000))
    with pytest.raises(RuntimeError, match="fit"):
        fresh.save(tmp_path / "x")
    with pytest.raises(ValueError, match="empty"):
        fresh.fit([])
    with pytest.raises(ValueError, match=r"item 0 must be \[C, T\]"):
        fresh.fit([torch.zeros(100)])
    with pytest.raises(AudioError, match="fit audio item 1"):
        fresh.fit([audio[0], torch.full((1, 100), math.nan)])
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        codec.decode(torch.full((1, 4, 3), 32))
    with pytest.raises(ValueError, match="k in 1..4"):
        codec.decode(torch.zeros(1, 5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"wav must be \[B, C, T\]"):
        codec.encode(torch.zeros(1000))
    with pytest.raises(ValueError, match="codebook_size"):
        MelCodec(codebook_size=1)
    with pytest.raises(FileNotFoundError, match="mel_codec.json"):
        MelCodec.load(tmp_path / "nothing")


def test_kmeans_finds_separated_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centers])
    found = kmeans(x, 3, iters=10, generator=torch.Generator().manual_seed(1))
    dist = torch.cdist(centers, found).min(dim=1).values
    assert bool((dist < 0.2).all()), found
    more = kmeans(x[:5], 8, iters=3, generator=g)  # more entries than points: still finite
    assert more.shape == (8, 2) and torch.isfinite(more).all()
