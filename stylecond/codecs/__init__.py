"""Audio codecs: waveform <-> discrete codes ``[B, K, F]`` (imported lazily)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "AudioCodec": "stylecond.codecs.base",
    "EncodecCodec": "stylecond.codecs.encodec",
    "MelCodec": "stylecond.codecs.mel_codec",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stylecond.codecs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
