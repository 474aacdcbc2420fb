"""Audio feature extractors feeding the style conditioner: ``wav [B, C, T] -> features [B, F, D]``."""

from __future__ import annotations

from stylecond.features.base import AudioFeatureExtractor
from stylecond.features.encodec_features import EncodecFeatures
from stylecond.features.hf_encoder import HFAudioEncoderFeatures
from stylecond.features.mel_features import MelFeatures

__all__ = ["AudioFeatureExtractor", "EncodecFeatures", "HFAudioEncoderFeatures", "MelFeatures"]
