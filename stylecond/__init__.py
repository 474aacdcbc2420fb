"""stylecond: audio-conditioned music generation (MusicGen-Style) as PyTorch Lightning modules.

Public names are imported lazily so that ``import stylecond`` and ``stylecond --help`` stay fast.
"""

from __future__ import annotations

from stylecond.utils.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "RVQBottleneck": "stylecond.quantization.rvq_bottleneck",
    "RVQOutput": "stylecond.quantization.rvq_bottleneck",
    "StyleConditioner": "stylecond.conditioners.style",
    "StyleOutput": "stylecond.conditioners.style",
    "HFTextConditioner": "stylecond.conditioners.text",
    "ConditioningDropout": "stylecond.conditioners.dropout",
    "ConditionFuser": "stylecond.conditioners.fuser",
    "ConditionTensors": "stylecond.conditioners.types",
    "MusicLM": "stylecond.lm.music_lm",
    "LMOutput": "stylecond.lm.music_lm",
    "CodebookPattern": "stylecond.lm.patterns",
    "DelayPattern": "stylecond.lm.patterns",
    "ParallelPattern": "stylecond.lm.patterns",
    "musicgen_from_transformers": "stylecond.interop.musicgen",
    "StyleMusicGen": "stylecond.models.style_musicgen",
    "MiniLMTextConditioner": "stylecond.conditioners.minilm",
    "FusedConditions": "stylecond.conditioners.fuser",
    "DoubleCFGSampler": "stylecond.generation.sampler",
    "SamplingSettings": "stylecond.generation.settings",
    "double_cfg": "stylecond.generation.cfg",
    "cfg": "stylecond.generation.cfg",
    "TextualInversionModule": "stylecond.inversion.module",
    "InvertedStyle": "stylecond.inversion.inverted_style",
    "GenerationPreview": "stylecond.training.preview",
    "quantize_int8": "stylecond.lm.quantize",
    "sample_next": "stylecond.generation.sampling",
    "generate_codes": "stylecond.generation.generate",
    "generate_long": "stylecond.generation.generate",
    "FrechetAudioDistance": "stylecond.metrics.fad",
    "KLDivergence": "stylecond.metrics.kl",
    "CLAPScore": "stylecond.metrics.clap_score",
    "KNNStyleMetrics": "stylecond.metrics.knn",
    "CodebookUsage": "stylecond.metrics.codebook_usage",
    "AudioCodec": "stylecond.codecs.base",
    "EncodecCodec": "stylecond.codecs.encodec",
    "MelCodec": "stylecond.codecs.mel_codec",
    "MelSpectrogram": "stylecond.mel",
    "load_audio": "stylecond.audio",
    "AudioError": "stylecond.audio",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
