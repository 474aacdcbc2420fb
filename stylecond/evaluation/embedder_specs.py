"""Embedders named on the command line: ``PREFIX[:ARGUMENT]`` -> an :class:`AudioEmbedder`.

Built in:

- ``mel_stats`` or ``mel_stats:SAMPLE_RATE``: :class:`~stylecond.metrics.embedders.mel_stats.MelStatsEmbedder`
  (weight-free, offline default).
- ``hf:NAME_OR_PATH``: :class:`~stylecond.metrics.embedders.hf_audio.HFAudioEmbedder` (a transformers audio
  model by hub name or local directory; CLAP checkpoints give their audio embedding).
- ``onnx:PATH`` or ``onnx:PATH@SAMPLE_RATE``: :class:`~stylecond.metrics.embedders.onnx.OnnxAudioEmbedder`
  (default rate 16000 Hz).

Any other embedder (or other init arguments) is given as a jsonargparse ``class_path`` spec: inline JSON /
YAML (``{"class_path": "stylecond.metrics.embedders.HFAudioEmbedder", "init_args": {...}}``) or a
``.json`` / ``.yaml`` file holding one. More prefixes can be added with :func:`register_embedder_loader`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stylecond.metrics.embedders.base import AudioEmbedder

__all__ = [
    "DEFAULT_EMBEDDER",
    "EmbedderLoader",
    "available_prefixes",
    "load_embedder",
    "register_embedder_loader",
]

DEFAULT_EMBEDDER = "mel_stats"

#: Builds an embedder from the part of the spec after ``PREFIX:`` ("" when the spec has no colon).
EmbedderLoader = Callable[[str], "AudioEmbedder"]


def _positive_int(text: str, spec: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"embedder spec {spec!r}: {what} must be a positive integer (Hz), got {text!r}")
    return value


def _load_mel_stats(argument: str) -> AudioEmbedder:
    from stylecond.metrics.embedders.mel_stats import MelStatsEmbedder

    if not argument:
        return MelStatsEmbedder()
    return MelStatsEmbedder(sample_rate=_positive_int(argument, f"mel_stats:{argument}", "the sample rate"))


def _load_hf(argument: str) -> AudioEmbedder:
    from stylecond.metrics.embedders.hf_audio import HFAudioEmbedder

    if not argument:
        raise ValueError("embedder spec 'hf:' needs a model: hf:NAME_OR_PATH")
    return HFAudioEmbedder(model_name_or_path=argument)


def _load_onnx(argument: str) -> AudioEmbedder:
    from stylecond.metrics.embedders.onnx import OnnxAudioEmbedder

    path, sep, rate = argument.rpartition("@")
    if not sep:
        path, rate = argument, "16000"
    if not path:
        raise ValueError("embedder spec 'onnx:' needs a file: onnx:PATH or onnx:PATH@SAMPLE_RATE")
    return OnnxAudioEmbedder(
        path=path, sample_rate=_positive_int(rate, f"onnx:{argument}", "the sample rate")
    )


_LOADERS: dict[str, EmbedderLoader] = {"mel_stats": _load_mel_stats, "hf": _load_hf, "onnx": _load_onnx}


def register_embedder_loader(prefix: str, loader: EmbedderLoader) -> None:
    """Make ``PREFIX:ARGUMENT`` specs call ``loader(ARGUMENT)``."""
    if not prefix.isidentifier():
        raise ValueError(f"embedder prefix must be an identifier like 'hf', got {prefix!r}")
    _LOADERS[prefix] = loader


def available_prefixes() -> tuple[str, ...]:
    return tuple(sorted(_LOADERS))


def _is_inline(text: str) -> bool:
    return text.startswith("{") or text.startswith("class_path:") or "\n" in text


def _is_class_path_spec(spec: str) -> bool:
    text = spec.strip()
    return _is_inline(text) or Path(text).suffix in (".json", ".yaml", ".yml")


def _load_class_path(spec: str) -> AudioEmbedder:
    import yaml
    from jsonargparse import ArgumentParser

    from stylecond.metrics.embedders.base import AudioEmbedder

    text = spec.strip()
    source = Path(text)
    if not _is_inline(text):
        if not source.is_file():
            raise ValueError(f"embedder spec file {text!r} does not exist")
        text = source.read_text()
    try:
        config: Any = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"embedder spec is not valid JSON/YAML: {err}") from None
    if not isinstance(config, dict) or "class_path" not in config:
        raise ValueError("embedder class_path spec must be a mapping with 'class_path' (and 'init_args')")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(AudioEmbedder, "embedder", required=True)
    try:
        cfg = parser.parse_object({"embedder": config})
        embedder = parser.instantiate_classes(cfg).embedder
    except Exception as err:  # jsonargparse raises its own error types
        raise ValueError(f"embedder class_path spec {config.get('class_path')!r}: {err}") from None
    assert isinstance(embedder, AudioEmbedder)
    return embedder


def load_embedder(spec: str = DEFAULT_EMBEDDER) -> AudioEmbedder:
    """Build the embedder named by ``spec`` (``mel_stats``, ``hf:NAME``, ``onnx:PATH[@SR]``, a class_path spec).

    Constructors never download: ``hf`` and ``onnx`` models load on first use.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"embedder spec must be a non-empty string, got {spec!r}")
    if _is_class_path_spec(spec):
        return _load_class_path(spec)
    prefix, _, argument = spec.strip().partition(":")
    loader = _LOADERS.get(prefix)
    if loader is None:
        raise ValueError(
            f"unknown embedder {prefix!r} in {spec!r}; valid prefixes: {', '.join(available_prefixes())} "
            "(or a class_path JSON/YAML spec)"
        )
    return loader(argument)
