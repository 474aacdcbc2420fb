"""Pluggable audio embedding models for the evaluation metrics (imported lazily)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "AudioEmbedder": "stylecond.metrics.embedders.base",
    "HFAudioEmbedder": "stylecond.metrics.embedders.hf_audio",
    "CodecEmbedder": "stylecond.metrics.embedders.codec",
    "MelStatsEmbedder": "stylecond.metrics.embedders.mel_stats",
    "OnnxAudioEmbedder": "stylecond.metrics.embedders.onnx",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stylecond.metrics.embedders' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
