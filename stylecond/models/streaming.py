"""Audio from codes decoded chunk by chunk: overlapping decode windows joined by a linear crossfade.

A codec decoder is not causal (convolutions look ahead, EnCodec's LSTM looks back), so decoding a chunk
alone is wrong at its edges. :class:`ChunkedDecoder` decodes each new chunk together with
``context_frames`` frames before it, keeps back the last ``overlap_frames`` frames of audio (they lack
their right context), and crossfades that kept-back audio into the next decode. Concatenated, the
emitted audio equals the decode of all codes at once except near chunk joins, where it is a blend of two
decodes of the same frames.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stylecond.codecs.base import AudioCodec

__all__ = ["ChunkedDecoder"]


class ChunkedDecoder:
    """Push ``codes [B, K, n]`` chunks; get ``wav [B, C, t]`` pieces whose concatenation is the audio.

    Args:
        codec: the codec that decodes the codes.
        context_frames: frames before a chunk decoded with it (left context), >= 0.
        overlap_frames: frames kept back and crossfaded into the next decode, >= 1.
    """

    def __init__(self, codec: AudioCodec, *, context_frames: int = 25, overlap_frames: int = 10) -> None:
        if context_frames < 0 or overlap_frames < 1:
            raise ValueError(
                f"need context_frames >= 0 and overlap_frames >= 1; got {context_frames}, {overlap_frames}"
            )
        self.codec, self.context, self.overlap = codec, context_frames, overlap_frames
        self.hop = int(codec.hop_length)
        self._codes: Tensor | None = None  # [B, K, F] every frame so far
        self._emitted = 0  # frames whose audio is final and handed out
        self._tail: Tensor | None = None  # [B, C, samples] audio of frames emitted.. held back

    @classmethod
    def for_codec(
        cls, codec: AudioCodec, *, context_seconds: float = 0.5, overlap_seconds: float = 0.2
    ) -> ChunkedDecoder:
        """The decoder ``generate_stream`` uses: ``context_seconds`` of left context, ``overlap_seconds``
        crossfaded (converted to the codec's frames)."""
        rate = float(codec.frame_rate)
        return cls(codec, context_frames=max(0, round(context_seconds * rate)),
                   overlap_frames=max(1, round(overlap_seconds * rate)))  # fmt: skip

    def _decode_from(self, start: int) -> Tensor:
        """Audio of frames ``start..F`` decoded with up to ``context`` frames before them."""
        assert self._codes is not None
        first = max(0, start - self.context)
        wav = self.codec.decode(self._codes[:, :, first:])
        return wav[..., (start - first) * self.hop :]

    def push(self, codes: Tensor) -> Tensor:
        """Add ``codes [B, K, n]``; returns the audio now final (``[B, C, 0]`` if none yet)."""
        self._codes = codes if self._codes is None else torch.cat([self._codes, codes], dim=2)
        total = self._codes.shape[2]
        keep = min(self.overlap, total - self._emitted)
        return self._emit(total - keep)

    def flush(self) -> Tensor:
        """The audio still held back (call once after the last chunk)."""
        if self._codes is None:
            raise ValueError("flush() before any push(): no codes to decode")
        return self._emit(self._codes.shape[2])

    def _emit(self, until: int) -> Tensor:
        assert self._codes is not None
        wav = self._decode_from(self._emitted)  # frames emitted..F
        if self._tail is not None:  # crossfade the held-back audio of the previous decode into this one
            n = min(self._tail.shape[-1], wav.shape[-1])
            ramp = torch.linspace(0.0, 1.0, n + 2, device=wav.device, dtype=wav.dtype)[1:-1]
            wav = torch.cat([self._tail[..., :n] * (1 - ramp) + wav[..., :n] * ramp, wav[..., n:]], dim=-1)
        cut = (until - self._emitted) * self.hop
        out, self._tail = wav[..., :cut], wav[..., cut:]
        self._emitted = until
        if until == self._codes.shape[2]:
            out, self._tail = wav, None  # the end: the rest of the last decode is final
        return out
