"""Chunked decoding with crossfades: the concatenated pieces are the decode of all codes at once, except
near the joins, where they blend two decodes of the same frames."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datamodules.synth import SynthStyles
from stylecond.codecs.base import AudioCodec
from stylecond.codecs.encodec import EncodecCodec
from stylecond.codecs.mel_codec import MelCodec
from stylecond.models.streaming import ChunkedDecoder
from tests.support.tiny_hub import tiny_encodec


@pytest.fixture(scope="module")
def encodec(tmp_path_factory: pytest.TempPathFactory) -> AudioCodec:
    path = tiny_encodec(tmp_path_factory.mktemp("encodec"), codebook_size=32, num_codebooks=2)
    return EncodecCodec(model_name_or_path=str(path), local_files_only=True)


def _codes(codec: AudioCodec, seconds: float) -> torch.Tensor:
    clip = SynthStyles(sample_rate=codec.sample_rate, seed=0).clip("jazz", seconds=seconds, seed=3)
    return codec.encode(clip.audio[None])


def _stream(codec: AudioCodec, codes: torch.Tensor, chunk: int, **kw: int) -> torch.Tensor:
    decoder = ChunkedDecoder(codec, **kw)
    pieces = [decoder.push(codes[:, :, i : i + chunk]) for i in range(0, codes.shape[2], chunk)]
    return torch.cat([*pieces, decoder.flush()], dim=-1)


def _difference(codec: AudioCodec, a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative waveform difference; for MelCodec, of log-mel spectra (Griffin-Lim's phases differ per window)."""
    if isinstance(codec, MelCodec):
        a, b = codec.features(a), codec.features(b)
    return float((a - b).norm() / b.norm())


# measured: 0.5 % (EnCodec stand-in, waveform); MelCodec (log-mel) 0.19 streamed against 0.25 for chunks
# decoded alone: Griffin-Lim draws its phases per decode, so two decodes of the same frames do not line up
@pytest.mark.parametrize(("which", "tolerance"), [("encodec", 0.03), ("mel", 0.22)])
def test_stream_matches_the_whole_decode(
    which: str, tolerance: float, encodec: AudioCodec, debug_codec: Path
) -> None:
    codec = encodec if which == "encodec" else MelCodec.load(debug_codec)
    codes = _codes(codec, 3.0)
    whole = codec.decode(codes)
    streamed = _stream(codec, codes, chunk=int(codec.frame_rate) // 2, context_frames=25, overlap_frames=10)
    assert streamed.shape == whole.shape
    error = _difference(codec, streamed, whole)
    assert error < tolerance, f"{which}: relative error {error:.3f}"
    # without context or crossfade the joins are off
    naive = torch.cat([codec.decode(codes[:, :, i : i + 25]) for i in range(0, codes.shape[2], 25)], -1)
    assert _difference(codec, naive, whole) > (2 if which == "encodec" else 1.2) * error
    assert codec.decode(codes[:, :, :1]).shape[-1] == codec.hop_length  # a one-frame tail decodes too


def test_pieces_arrive_as_chunks_are_pushed(encodec: AudioCodec) -> None:
    codes = _codes(encodec, 2.0)
    decoder = ChunkedDecoder(encodec, context_frames=5, overlap_frames=4)
    first = decoder.push(codes[:, :, :20])
    assert first.shape[-1] == 16 * encodec.hop_length  # all but the held-back overlap
    assert decoder.push(codes[:, :, 20:40]).shape[-1] == 20 * encodec.hop_length
    assert decoder.flush().shape[-1] == 4 * encodec.hop_length  # the held-back 4 frames
    with pytest.raises(ValueError, match="flush"):
        ChunkedDecoder(encodec).flush()
    with pytest.raises(ValueError, match="overlap_frames"):
        ChunkedDecoder(encodec, overlap_frames=0)
