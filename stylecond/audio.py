"""Audio I/O and plumbing: load (path or bytes), resample, channels, crop/pad, loudness, save.

Everything here works on ``torch`` tensors laid out ``[..., C, T]`` (channels then time). Files are
decoded with ``soundfile`` (wav, flac, ogg, mp3, ...) and resampled with ``julius``; no torchaudio.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from pathlib import Path

import julius
import numpy as np
import soundfile as sf
import torch
from torch import Tensor

__all__ = [
    "AudioError",
    "AudioWriter",
    "audio_format",
    "audio_frames",
    "check_finite",
    "convert_channels",
    "crop_or_pad",
    "load_audio",
    "normalize_loudness",
    "resample",
    "save_audio",
]

#: Seconds of audio written per block by :func:`save_audio`.
SAVE_BLOCK_SECONDS = 60.0
#: RMS below this (about -160 dBFS) counts as digital silence for loudness normalisation.
_SILENCE_RMS = 1e-8


class AudioError(ValueError):
    """An audio file (or in-memory buffer) that cannot be used; the message names the file."""


def check_finite(wav: Tensor, name: str) -> None:
    """Raise :class:`AudioError` naming ``name`` if ``wav`` holds any NaN or infinite sample."""
    bad = ~torch.isfinite(wav)
    if bool(bad.any()):
        n_nan = int(torch.isnan(wav).sum())
        n_inf = int(bad.sum()) - n_nan
        raise AudioError(
            f"audio {name!r} contains non-finite samples ({n_nan} NaN, {n_inf} inf); "
            "every sample must be a finite number"
        )


_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_SIZE_PLACEHOLDERS = {0, 0xFFFFFFFF, 0x7FFFFFFF}


def _check_not_truncated(f: sf.SoundFile, label: str) -> None:
    """WAV-family files whose header promises more data than the file holds are truncated.

    libsndfile silently reads what is there; placeholder sizes written by streaming encoders are allowed.
    """
    match = _DATA_SIZE.search(f.extra_info or "")
    if match is None:
        return
    declared, actual = int(match.group(1)), int(match.group(2))
    if declared not in _SIZE_PLACEHOLDERS and actual < declared:
        raise AudioError(
            f"audio {label!r} is truncated: its header declares {declared} data bytes but only {actual} remain"
        )


def _open(source: str | os.PathLike[str] | bytes, name: str | None) -> tuple[io.BytesIO | str, str]:
    """A handle soundfile opens and the label errors use; AudioError for a missing or empty source."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "<bytes>"
        if len(source) == 0:
            raise AudioError(f"audio {label!r} is empty (0 bytes)")
        return io.BytesIO(bytes(source)), label
    path = Path(source)
    label = name or str(path)
    if not path.exists():
        raise AudioError(f"audio file {label!r} does not exist")
    if not path.is_file():
        raise AudioError(f"audio file {label!r} is not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file {label!r} is empty (0 bytes)")
    return str(path), label


def audio_frames(source: str | os.PathLike[str] | bytes, *, name: str | None = None) -> tuple[int, int, str]:
    """``(frames, sample_rate, format)`` from the header only (no decoding); AudioError if unreadable."""
    handle, label = _open(source, name)
    try:
        with sf.SoundFile(handle) as f:
            _check_not_truncated(f, label)
            return int(f.frames), int(f.samplerate), str(f.format)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"audio {label!r} could not be decoded: {exc}") from exc


def load_audio(
    source: str | os.PathLike[str] | bytes,
    *,
    sample_rate: int | None = None,
    channels: int | None = None,
    name: str | None = None,
    start: int = 0,
    frames: int | None = None,
) -> tuple[Tensor, int]:
    """Decode an audio file or an in-memory encoded buffer.

    Args:
        source: a path, or the bytes of an encoded file (wav, flac, ogg, mp3, ...).
        sample_rate: resample to this rate (Hz); ``None`` keeps the file's rate.
        channels: convert to this many channels (see :func:`convert_channels`); ``None`` keeps them.
        name: how to call the source in error messages (defaults to the path, or ``"<bytes>"``).
        start / frames: decode only ``frames`` samples from sample ``start`` (at the file's rate; None: to
            the end). Only that span is read and checked, so memory follows the span, not the file.

    Returns:
        ``(wav [C, T] float32, sample_rate)``: the rate is the target one if resampled.

    Raises:
        AudioError: missing, empty, undecodable or zero-length file, or NaN/inf samples.
    """
    if sample_rate is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
    if channels is not None and channels <= 0:
        raise ValueError(f"channels must be a positive integer, got {channels}")
    if start < 0 or (frames is not None and frames < 1):
        raise ValueError(f"start must be >= 0 and frames >= 1 (or None); got {start}, {frames}")
    handle, label = _open(source, name)
    try:
        with sf.SoundFile(handle) as f:
            _check_not_truncated(f, label)
            if start:
                f.seek(min(start, f.frames))
            data = f.read(frames=-1 if frames is None else frames, dtype="float32", always_2d=True)  # [T, C]
            file_sr = f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"audio {label!r} could not be decoded: {exc}") from exc
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"audio {label!r} has zero length (no samples)")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # [C, T]
    check_finite(wav, label)
    sr = int(file_sr)
    if channels is not None:
        wav = convert_channels(wav, channels)
    if sample_rate is not None and sample_rate != sr:
        wav = resample(wav, sr, sample_rate)
        sr = sample_rate
    return wav.float().contiguous(), sr


def resample(wav: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Resample ``wav [..., T]`` from ``orig_sr`` to ``new_sr`` Hz (julius sinc resampling).

    The output has ``round(T * new_sr / orig_sr)`` samples.
    """
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive integers, got orig_sr={orig_sr}, new_sr={new_sr}")
    if orig_sr == new_sr:
        return wav
    g = math.gcd(int(orig_sr), int(new_sr))
    in_dtype = wav.dtype
    out = julius.resample_frac(wav.float(), int(orig_sr) // g, int(new_sr) // g)
    return out.to(in_dtype) if in_dtype.is_floating_point else out


def convert_channels(wav: Tensor, channels: int) -> Tensor:
    """Convert ``wav [..., C, T]`` to ``channels`` channels.

    Mono is the mean of all channels; mono to N copies the channel; N to fewer (but more than
    one) keeps the first ones. Going from 2+ channels up to more channels is ambiguous and refused.
    """
    if channels <= 0:
        raise ValueError(f"channels must be a positive integer, got {channels}")
    if wav.dim() < 2:
        raise ValueError(f"wav must be [..., C, T], got shape {tuple(wav.shape)}")
    src = wav.shape[-2]
    if src == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=-2, keepdim=True)
    if src == 1:
        return wav.expand(*wav.shape[:-2], channels, wav.shape[-1]).contiguous()
    if src > channels:
        return wav[..., :channels, :]
    raise ValueError(f"cannot convert {src} channels to {channels}: only mono->N, N->mono and N->fewer work")


def crop_or_pad(wav: Tensor, length: int, *, offset: int = 0) -> tuple[Tensor, Tensor]:
    """Take ``length`` samples of ``wav [..., T]`` starting at ``offset``, zero-padding the end.

    Returns:
        ``(wav [..., length], valid [length] bool)``: ``valid`` is True on real samples, False on padding.
    """
    if length <= 0:
        raise ValueError(f"length must be a positive number of samples, got {length}")
    total = wav.shape[-1]
    if not 0 <= offset <= total:
        raise ValueError(f"offset must be in [0, {total}] (the input length), got {offset}")
    piece = wav[..., offset : offset + length]
    n_valid = piece.shape[-1]
    if n_valid < length:
        piece = torch.nn.functional.pad(piece, (0, length - n_valid))
    valid = torch.zeros(length, dtype=torch.bool, device=wav.device)
    valid[:n_valid] = True
    return piece, valid


def _rms(wav: Tensor) -> Tensor:
    dims = (-1,) if wav.dim() == 1 else (-2, -1)
    rms = wav.float().pow(2).mean(dim=dims, keepdim=True).sqrt()
    return rms


def normalize_loudness(wav: Tensor, *, target_db: float = -20.0) -> Tensor:
    """Scale ``wav [T]``, ``[C, T]`` or ``[B, C, T]`` to an RMS level of ``target_db`` dBFS.

    The RMS is taken over channels and time (per batch item for ``[B, C, T]``). Silent items are
    returned unchanged with a warning. The result is not clipped: a high target may exceed [-1, 1].
    """
    if not math.isfinite(target_db) or target_db > 0:
        raise ValueError(f"target_db must be a finite level in dBFS <= 0, got {target_db}")
    rms = _rms(wav)
    silent = rms < _SILENCE_RMS
    if bool(silent.any()):
        warnings.warn(
            f"normalize_loudness: {int(silent.sum())} silent item(s) (RMS < {_SILENCE_RMS:g}) left unchanged",
            stacklevel=2,
        )
    target = 10.0 ** (target_db / 20.0)
    gain = torch.where(silent, torch.ones_like(rms), target / rms.clamp_min(_SILENCE_RMS))
    return (wav.float() * gain).to(wav.dtype)


def audio_format(path: str | os.PathLike[str]) -> str:
    """The soundfile format ``path``'s suffix selects (``WAV`` or ``FLAC``); ValueError naming the path otherwise."""
    fmt = {".flac": "FLAC", ".wav": "WAV"}.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{str(path)!r} must end in .flac or .wav")
    return fmt


class AudioWriter:
    """Write audio to a ``.wav`` / ``.flac`` file piece by piece (``with AudioWriter(...) as w: w.write(wav)``).

    Args:
        path: output file; its suffix picks the format. Parent folders are created.
        sample_rate: in Hz; channels: C of every piece.
        subtype: soundfile subtype; default ``PCM_16``. ``"FLOAT"`` keeps WAV exact.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, sample_rate: int, channels: int, subtype: str | None = None
    ) -> None:
        self.path, fmt = Path(path), audio_format(path)
        if sample_rate <= 0 or channels <= 0:
            raise ValueError(f"sample_rate and channels must be positive, got {sample_rate}, {channels}")
        self.subtype = subtype or "PCM_16"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = sf.SoundFile(str(self.path), mode="w", samplerate=int(sample_rate), channels=channels,
                                  format=fmt, subtype=self.subtype)  # fmt: skip
        self.frames = 0
        self._clipped = False

    def write(self, wav: Tensor) -> None:
        """Append ``wav [C, t]`` in [-1, 1] (clipped, with a warning, for integer subtypes)."""
        check_finite(wav, str(self.path))
        wav = wav.detach().float().cpu()
        if not self.subtype.startswith(("FLOAT", "DOUBLE")) and wav.numel():
            peak = float(wav.abs().max())
            if peak > 1.0:
                if not self._clipped:  # once per file, not once per piece
                    warnings.warn(f"save_audio {str(self.path)!r}: peak {peak:.3f} > 1, clipping to [-1, 1]",
                                  stacklevel=2)  # fmt: skip
                self._clipped = True
                wav = wav.clamp(-1.0, 1.0)
        self._file.write(np.ascontiguousarray(wav.T.numpy()))
        self._file.flush()
        self.frames += int(wav.shape[1])

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def save_audio(
    path: str | os.PathLike[str],
    wav: Tensor,
    sample_rate: int,
    *,
    subtype: str | None = None,
) -> Path:
    """Write ``wav [C, T]`` (or ``[T]``, mono) to a ``.flac`` or ``.wav`` file, in ~60 s blocks.

    Args:
        path: output file; its suffix picks the format. Parent folders are created.
        wav: samples in [-1, 1]; values outside are clipped (with a warning) for integer subtypes.
        sample_rate: in Hz.
        subtype: soundfile subtype; default ``PCM_16`` (FLAC and WAV). ``"FLOAT"`` keeps WAV exact.

    Returns:
        The path written.
    """
    try:
        audio_format(path)
    except ValueError as err:
        raise ValueError(f"save_audio path {err}") from None
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    if wav.dim() != 2 or wav.shape[0] == 0:
        raise ValueError(f"wav must be [C, T] with C >= 1, got shape {tuple(wav.shape)}")
    check_finite(wav, str(path))
    block = max(1, int(SAVE_BLOCK_SECONDS * sample_rate))
    with AudioWriter(path, sample_rate=sample_rate, channels=wav.shape[0], subtype=subtype) as writer:
        for start in range(0, wav.shape[1], block):
            writer.write(wav[:, start : start + block])
    return Path(path)
