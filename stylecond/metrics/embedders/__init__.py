"""Pluggable audio embedding models for the evaluation metrics (imported lazily)."""

from __future__ import annotations

from stylecond.utils.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AudioEmbedder": "stylecond.metrics.embedders.base",
    "HFAudioEmbedder": "stylecond.metrics.embedders.hf_audio",
    "CodecEmbedder": "stylecond.metrics.embedders.codec",
    "MelStatsEmbedder": "stylecond.metrics.embedders.mel_stats",
    "OnnxAudioEmbedder": "stylecond.metrics.embedders.onnx",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
