"""Codecs named on the command line: ``SCHEME:ARGUMENT`` -> a loaded :class:`~stylecond.codecs.base.AudioCodec`.

Built in:

- ``mel:DIR``: a fitted :class:`~stylecond.codecs.mel_codec.MelCodec` saved with ``MelCodec.save(DIR)``.
- ``encodec:NAME_OR_PATH`` or ``encodec:NAME_OR_PATH@BANDWIDTH``: a Hugging Face ``EncodecModel`` by hub
  name or local folder (:class:`~stylecond.codecs.encodec.EncodecCodec`), bandwidth in kbps.

Other schemes can be added with :func:`register_codec_loader` (the loader must be importable in
worker processes, so register it at import time of a module).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stylecond.codecs.base import AudioCodec

__all__ = ["CodecLoader", "available_schemes", "load_codec", "register_codec_loader"]

#: Builds a codec from the part of the spec after ``SCHEME:``.
CodecLoader = Callable[[str], "AudioCodec"]


def _load_mel(argument: str) -> AudioCodec:
    from stylecond.codecs.mel_codec import MelCodec

    return MelCodec.load(argument)


def _load_encodec(argument: str) -> AudioCodec:
    from stylecond.codecs.encodec import EncodecCodec

    name, sep, bandwidth = argument.rpartition("@")
    if not sep:
        return EncodecCodec(model_name_or_path=argument)
    try:
        value = float(bandwidth)
    except ValueError:
        raise ValueError(
            f"codec spec 'encodec:{argument}': bandwidth after '@' must be a number (kbps)"
        ) from None
    return EncodecCodec(model_name_or_path=name, bandwidth=value)


_LOADERS: dict[str, CodecLoader] = {"mel": _load_mel, "encodec": _load_encodec}


def register_codec_loader(scheme: str, loader: CodecLoader) -> None:
    """Make ``SCHEME:ARGUMENT`` specs call ``loader(ARGUMENT)``."""
    if not scheme.isidentifier():
        raise ValueError(f"codec scheme must be an identifier like 'mel', got {scheme!r}")
    _LOADERS[scheme] = loader


def available_schemes() -> tuple[str, ...]:
    return tuple(sorted(_LOADERS))


def load_codec(spec: str) -> AudioCodec:
    """Load the codec named by ``spec`` (``mel:DIR``, ``encodec:NAME_OR_PATH[@KBPS]``, ...)."""
    scheme, sep, argument = spec.partition(":")
    if not sep or not argument:
        raise ValueError(
            f"codec spec must be SCHEME:ARGUMENT with SCHEME in {available_schemes()}, got {spec!r}"
        )
    loader = _LOADERS.get(scheme)
    if loader is None:
        raise ValueError(f"unknown codec scheme {scheme!r} in {spec!r}; valid schemes: {available_schemes()}")
    return loader(argument)
