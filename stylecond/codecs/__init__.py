"""Audio codecs: waveform <-> discrete codes ``[B, K, F]`` (imported lazily)."""

from __future__ import annotations

from stylecond.utils.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AudioCodec": "stylecond.codecs.base",
    "EncodecCodec": "stylecond.codecs.encodec",
    "MelCodec": "stylecond.codecs.mel_codec",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
