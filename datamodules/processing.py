"""Turn one raw WebDataset sample (dict of member bytes) into a cropped, padded :class:`AudioSample`.

Crops are random in training and start at 0 in evaluation. When both audio and codes are present the
crop is drawn in codec frames and the audio offset derived from it, so both cover the same time span.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from datamodules.batch import AudioSample
from datamodules.decoding import (
    CodecExpectation,
    decode_audio,
    decode_codes,
    decode_json,
    find_audio_member,
    seekable_length,
)  # fmt: skip
from datamodules.skips import SkipSample
from datamodules.text_recipe import TextRecipe
from stylecond.audio import crop_or_pad

__all__ = ["SampleProcessor"]


@dataclass
class _Audio:
    """A sample's audio: its length in output samples and either the decoded ``wav [C, T]`` or the encoded
    ``data`` to decode a crop from."""

    length: int
    name: str
    wav: torch.Tensor | None = None
    data: Any = None


@dataclass(frozen=True)
class SampleProcessor:
    """Decode, check, crop and caption one sample (picklable: it runs inside loader workers).

    Attributes:
        sample_rate: output audio rate in Hz.
        channels: output audio channels.
        segment_seconds: length of the crop.
        min_length_ratio: samples shorter than ``min_length_ratio * segment_seconds`` are skipped.
        decode_audio: decode the audio member (False: codes only; needs ``codes``).
        codes: expectations for ``codes.npy`` members, or None to ignore them.
        style_seconds: length of the paired style reference, or None to not load ``style.<ext>``.
        use_paired_style: load ``style.<ext>`` members when present (False: always ``has_style=False``).
        text_recipe: augmentation applied in training (None: the json ``text`` as is).
        train: random crops and text augmentation.
    """

    sample_rate: int
    channels: int
    segment_seconds: float
    min_length_ratio: float = 0.5
    decode_audio: bool = True
    codes: CodecExpectation | None = None
    style_seconds: float | None = None
    use_paired_style: bool = True
    text_recipe: TextRecipe | None = None
    train: bool = True

    def __post_init__(self) -> None:
        if not self.decode_audio and self.codes is None:
            raise ValueError("decode_audio=False needs pre-tokenized codes (use_codes=True)")

    @property
    def segment_samples(self) -> int:
        return max(1, round(self.segment_seconds * self.sample_rate))

    @property
    def segment_frames(self) -> int:
        assert self.codes is not None
        return max(1, round(self.segment_seconds * self.codes.frame_rate))

    def __call__(self, raw: dict[str, Any], rng: random.Random) -> AudioSample:
        """``raw`` has ``__key__``, ``__url__`` and member bytes; raises :class:`SkipSample`."""
        key, url = str(raw.get("__key__")), str(raw.get("__url__"))
        name = f"{url}:{key}"
        meta = decode_json(raw.get("json"), name=f"{name}.json")
        codes = None
        if self.codes is not None:
            codes = decode_codes(raw.get("codes.npy"), expect=self.codes, meta=meta, name=f"{name}.codes.npy")
        audio: _Audio | None = None
        if self.decode_audio:
            member = find_audio_member(raw)
            if member is None:
                raise SkipSample(
                    "missing_audio", f"{name}: no flac/wav/ogg/mp3 member (members: {sorted(raw)})"
                )
            audio = self._audio(raw[member], f"{name}.{member}", member)
        if audio is not None:
            seconds = audio.length / self.sample_rate
        else:
            assert codes is not None and self.codes is not None
            seconds = codes.shape[-1] / self.codes.frame_rate
        if audio is not None and codes is not None and self.codes is not None:
            expected = audio.length / self.sample_rate * self.codes.frame_rate
            if abs(codes.shape[-1] - expected) > 2 + 0.01 * expected:
                raise SkipSample("length_mismatch", f"{name}: {codes.shape[-1]} code frames for {seconds:.2f} s "
                                 f"of audio at {self.codes.frame_rate} Hz (expected ~{expected:.0f})")  # fmt: skip
        if seconds < self.min_length_ratio * self.segment_seconds:
            raise SkipSample("too_short", f"{name}: {seconds:.2f} s < min_length_ratio * segment_seconds "
                             f"= {self.min_length_ratio * self.segment_seconds:.2f} s")  # fmt: skip

        sample = AudioSample(key=key, text=self._text(meta, rng), sample_rate=self.sample_rate,
                             metadata={**meta, "__url__": url})  # fmt: skip
        start_seconds = self._crop(sample, audio, codes, rng)
        sample.metadata["crop_offset_seconds"] = start_seconds
        if self.style_seconds is not None:
            self._style(sample, raw, name, rng)
        return sample

    def _text(self, meta: dict[str, Any], rng: random.Random) -> str:
        if self.train and self.text_recipe is not None:
            return self.text_recipe(meta, rng)
        return str(meta["text"])

    def _audio(self, data: Any, name: str, member: str) -> _Audio:
        """The member's length, decoded now unless a crop of it can be decoded alone later (a ``flac`` or
        ``wav`` at the output rate: memory then follows the segment, not the track)."""
        length = seekable_length(data, member=member, sample_rate=self.sample_rate, name=name)
        if length is not None:
            return _Audio(length=length, data=data, name=name)
        wav = decode_audio(data, sample_rate=self.sample_rate, channels=self.channels, name=name)
        return _Audio(length=wav.shape[-1], wav=wav, name=name)

    def _crop(self, sample: AudioSample, audio: _Audio | None, codes: torch.Tensor | None,
              rng: random.Random) -> float:  # fmt: skip
        if codes is not None and self.codes is not None:
            frames = self.segment_frames
            max_off = max(0, codes.shape[-1] - frames)
            off_f = rng.randint(0, max_off) if self.train else 0
            sample.codes, sample.codes_mask = crop_or_pad(codes, frames, offset=off_f)
            start = off_f / self.codes.frame_rate
            off_s = round(start * self.sample_rate)
        else:
            assert audio is not None
            max_off = max(0, audio.length - self.segment_samples)
            off_s = rng.randint(0, max_off) if self.train else 0
            start = off_s / self.sample_rate
        if audio is not None:
            off_s = min(off_s, audio.length)
            if audio.wav is not None:
                sample.audio, sample.audio_mask = crop_or_pad(audio.wav, self.segment_samples, offset=off_s)
            elif off_s >= audio.length:  # the codes run past the audio: an all-padding crop, as above
                sample.audio = torch.zeros(self.channels, self.segment_samples)
                sample.audio_mask = torch.zeros(self.segment_samples, dtype=torch.bool)
            else:
                piece = decode_audio(audio.data, sample_rate=self.sample_rate, channels=self.channels,
                                     name=audio.name, start=off_s, frames=self.segment_samples)  # fmt: skip
                sample.audio, sample.audio_mask = crop_or_pad(piece, self.segment_samples)
        return start

    def _style(self, sample: AudioSample, raw: dict[str, Any], name: str, rng: random.Random) -> None:
        assert self.style_seconds is not None
        length = max(1, round(self.style_seconds * self.sample_rate))
        member = find_audio_member(raw, prefix="style.") if self.use_paired_style else None
        if member is None:
            sample.style_audio = torch.zeros(self.channels, length)
            sample.style_mask = torch.zeros(length, dtype=torch.bool)
            return
        style = decode_audio(raw[member], sample_rate=self.sample_rate, channels=self.channels,
                             name=f"{name}.{member}", reason_prefix="style")  # fmt: skip
        max_off = max(0, style.shape[-1] - length)
        offset = rng.randint(0, max_off) if self.train else max_off // 2
        sample.style_audio, sample.style_mask = crop_or_pad(style, length, offset=offset)
        sample.has_style = True
