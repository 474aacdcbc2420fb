"""Fixtures for the data tests: tiny tar shards written by hand and a frame-local stand-in codec."""

from __future__ import annotations

import io
import json
import math
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor

from stylecond.codecs.base import AudioCodec

SR = 16000


def tone(seconds: float, freq: float = 440.0, sr: int = SR, channels: int = 1) -> np.ndarray:
    """``[T, C]`` float32 sine, distinct per frequency."""
    t = np.arange(round(seconds * sr)) / sr
    wav = 0.5 * np.sin(2 * math.pi * freq * t).astype(np.float32)
    return np.repeat(wav[:, None], channels, axis=1)


def audio_bytes(data: np.ndarray, sr: int = SR, fmt: str = "FLAC", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def sample(key: str, *, seconds: float = 1.0, freq: float = 440.0, text: str | None = None,
           **meta: Any) -> dict[str, bytes]:  # fmt: skip
    """Members of one good sample: ``flac`` + ``json``."""
    return {"flac": audio_bytes(tone(seconds, freq)),
            "json": json.dumps({"text": text if text is not None else f"text of {key}", **meta}).encode()}  # fmt: skip


def write_tar(path: Path, samples: dict[str, dict[str, bytes]]) -> str:
    """Write ``{key: {ext: bytes}}`` into a tar at ``path``; returns the path as a string."""
    with tarfile.open(path, "w") as tar:
        for key, members in samples.items():
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


@pytest.fixture
def make_shards(tmp_path: Path) -> Callable[..., str]:
    """``make_shards(n_shards, per_shard, seconds=1.0)`` -> brace pattern of good shards in tmp_path."""

    def make(n_shards: int, per_shard: int, *, seconds: float = 1.0, name: str = "s") -> str:
        for s in range(n_shards):
            samples = {f"k{s}_{i}": sample(f"k{s}_{i}", seconds=seconds, freq=200.0 + 50 * (s * per_shard + i))
                       for i in range(per_shard)}  # fmt: skip
            write_tar(tmp_path / f"{name}-{s:03d}.tar", samples)
        return str(tmp_path / f"{name}-{{000..{n_shards - 1:03d}}}.tar")

    return make


class TinyCodec(AudioCodec):
    """Frame-local stand-in codec (16 kHz mono, 50 Hz, K=2, card 16): codes depend on one frame only."""

    hop = 320

    @property
    def sample_rate(self) -> int:
        return SR

    @property
    def channels(self) -> int:
        return 1

    @property
    def frame_rate(self) -> float:
        return SR / self.hop

    @property
    def num_codebooks(self) -> int:
        return 2

    @property
    def cardinality(self) -> int:
        return 16

    @property
    def codec_id(self) -> str:
        return "tiny-test-codec"

    def encode(self, wav: Tensor) -> Tensor:
        wav = self._check_wav(wav)[:, 0]  # [B, T]
        frames = math.ceil(wav.shape[-1] / self.hop)
        wav = torch.nn.functional.pad(wav, (0, frames * self.hop - wav.shape[-1])).view(
            wav.shape[0], frames, self.hop
        )
        mean = ((wav.mean(-1) + 1) * 8).floor().clamp(0, 15)
        rms = (wav.pow(2).mean(-1).sqrt() * 30).floor().clamp(0, 15)
        return torch.stack([mean, rms], dim=1).long()

    def decode(self, codes: Tensor) -> Tensor:
        codes = self._check_codes(codes)
        return (codes[:, :1].float() / 8 - 1).repeat_interleave(self.hop, dim=-1)


@pytest.fixture
def tiny_codec() -> TinyCodec:
    from datamodules.codec_loaders import register_codec_loader

    register_codec_loader("tiny", lambda argument: TinyCodec())
    return TinyCodec()


@pytest.fixture
def kit() -> Any:
    """Helpers for building shards by hand: ``tone``, ``audio_bytes``, ``sample``, ``write_tar``, ``SR``."""
    from types import SimpleNamespace

    return SimpleNamespace(tone=tone, audio_bytes=audio_bytes, sample=sample, write_tar=write_tar, SR=SR)
