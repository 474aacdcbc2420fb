"""Decoding the members of a WebDataset audio sample: audio (soundfile), ``json`` and ``codes.npy``.

Every function raises :class:`~datamodules.skips.SkipSample` with a reason and a message naming the
member, so the pipeline can skip and count the sample instead of dying.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from datamodules.skips import SkipSample
from stylecond.audio import AudioError, audio_frames, load_audio

__all__ = [
    "AUDIO_EXTENSIONS",
    "CodecExpectation",
    "decode_audio",
    "decode_codes",
    "decode_json",
    "find_audio_member",
    "seekable_length",
]

#: Audio member extensions recognised in shards, in order of preference.
AUDIO_EXTENSIONS: tuple[str, ...] = ("flac", "wav", "ogg", "mp3")


@dataclass(frozen=True)
class CodecExpectation:
    """What pre-tokenized ``codes.npy`` members must match.

    Attributes:
        num_codebooks: K, the first dimension of the codes.
        frame_rate: codec frames per second.
        cardinality: codes must lie in ``[0, cardinality)``; None skips the upper bound check.
        codec_id: must equal the json ``codec_id`` field; None accepts any codec.
    """

    num_codebooks: int
    frame_rate: float
    cardinality: int | None = None
    codec_id: str | None = None

    def __post_init__(self) -> None:
        if self.num_codebooks < 1:
            raise ValueError(f"num_codebooks must be >= 1, got {self.num_codebooks}")
        if not self.frame_rate > 0:
            raise ValueError(f"frame_rate must be > 0 Hz, got {self.frame_rate}")
        if self.cardinality is not None and not 1 <= self.cardinality <= 32768:
            raise ValueError(f"cardinality must be in 1..32768 (int16 codes), got {self.cardinality}")


def find_audio_member(sample: Mapping[str, Any], prefix: str = "") -> str | None:
    """Name of the first audio member (``flac``, ``wav``, ``ogg``, ``mp3``, with ``prefix``) or None."""
    for ext in AUDIO_EXTENSIONS:
        if prefix + ext in sample:
            return prefix + ext
    return None


def seekable_length(data: Any, *, member: str, sample_rate: int, name: str) -> int | None:
    """Samples in a ``flac`` / ``wav`` member already at ``sample_rate``, read from its header: then a crop
    can be decoded alone (:func:`decode_audio` with ``start`` / ``frames``). None for other members, whose
    whole audio is decoded. Raises :class:`SkipSample` (``bad_audio``) when the header is unreadable."""
    if not member.endswith(("flac", "wav")) or not isinstance(data, (bytes, bytearray)):
        return None
    try:
        frames, rate, _ = audio_frames(bytes(data), name=name)
    except AudioError as err:
        raise SkipSample("bad_audio", str(err)) from err
    return frames if rate == sample_rate and frames > 0 else None


def decode_audio(
    data: bytes,
    *,
    sample_rate: int,
    channels: int,
    name: str,
    reason_prefix: str = "",
    start: int = 0,
    frames: int | None = None,
) -> Tensor:
    """Decode encoded audio bytes to ``[C, T]`` float32 at ``sample_rate`` with ``channels`` channels
    (``start`` / ``frames``: only that span, in the member's own samples).

    Raises:
        SkipSample: ``bad_audio`` (undecodable, empty, zero length) or ``nonfinite_audio`` (NaN/inf);
            with ``reason_prefix="style"`` both become ``bad_style``.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise SkipSample("bad_style" if reason_prefix else "bad_audio", f"{name}: member is not bytes")
    try:
        wav, _ = load_audio(bytes(data), sample_rate=sample_rate, channels=channels, name=name, start=start,
                            frames=frames)  # fmt: skip
    except AudioError as err:
        if reason_prefix:
            raise SkipSample("bad_style", str(err)) from err
        reason = "nonfinite_audio" if "non-finite" in str(err) else "bad_audio"
        raise SkipSample(reason, str(err)) from err
    if not bool(torch.isfinite(wav).all()):  # resampling cannot create NaN, but be explicit
        raise SkipSample(
            "bad_style" if reason_prefix else "nonfinite_audio", f"{name}: non-finite after resampling"
        )
    return wav


def decode_json(data: Any, *, name: str) -> dict[str, Any]:
    """Parse the ``json`` member; it must be an object with a string ``text`` field."""
    if data is None:
        raise SkipSample("missing_json", f"{name}: no json member")
    try:
        meta = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as err:
        raise SkipSample("bad_json", f"{name}: invalid json ({err})") from err
    if not isinstance(meta, dict):
        raise SkipSample("bad_json", f"{name}: json must be an object, got {type(meta).__name__}")
    if not isinstance(meta.get("text"), str):
        raise SkipSample("bad_json", f"{name}: json field 'text' must be a string, got {meta.get('text')!r}")
    return meta


def decode_codes(data: Any, *, expect: CodecExpectation, meta: Mapping[str, Any], name: str) -> Tensor:
    """Decode ``codes.npy`` (int16 ``[K, F]``, no pickles) to a long tensor ``[K, F]``.

    Raises:
        SkipSample: ``missing_codes``, ``codec_mismatch`` (json ``codec_id`` differs from the expected one)
            or ``bad_codes`` (not int16 2-D, wrong K, values outside ``[0, cardinality)``).
    """
    if data is None:
        raise SkipSample("missing_codes", f"{name}: no codes.npy member")
    if expect.codec_id is not None and meta.get("codec_id") != expect.codec_id:
        raise SkipSample(
            "codec_mismatch", f"{name}: json codec_id {meta.get('codec_id')!r}, expected {expect.codec_id!r}"
        )
    try:
        arr = np.load(io.BytesIO(bytes(data)), allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - a damaged header raises ValueError, SyntaxError, TokenError, ...
        raise SkipSample("bad_codes", f"{name}: unreadable codes.npy ({err})") from err
    if not isinstance(arr, np.ndarray) or arr.dtype != np.int16 or arr.ndim != 2:
        raise SkipSample("bad_codes", f"{name}: codes.npy must be int16 [K, F], got {getattr(arr, 'dtype', '?')} "
                         f"shape {getattr(arr, 'shape', '?')}")  # fmt: skip
    k, f = arr.shape
    if k != expect.num_codebooks:
        raise SkipSample(
            "bad_codes", f"{name}: codes.npy has K={k} codebooks, expected {expect.num_codebooks}"
        )
    if f == 0:
        raise SkipSample("bad_codes", f"{name}: codes.npy has zero frames")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or (expect.cardinality is not None and hi >= expect.cardinality):
        raise SkipSample(
            "bad_codes", f"{name}: codes in [{lo}, {hi}], valid range is [0, {expect.cardinality or 32768})"
        )
    return torch.from_numpy(arr.astype(np.int64))
