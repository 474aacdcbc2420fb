"""Embeddings pooled from an audio codec: its encoder latents, or a bag of its codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal, Protocol, cast

import torch
from torch import Tensor

from stylecond.codecs.base import AudioCodec
from stylecond.metrics.embedders.base import AudioEmbedder
from stylecond.utils.frozen import exclude_from_checkpoint, freeze_


class LatentCodec(Protocol):
    """A codec that also exposes its continuous encoder output."""

    def encode_latents(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` -> latents ``[B, D, F]``."""
        ...


def _latent_fn(codec: AudioCodec) -> Callable[[Tensor], Tensor] | None:
    """The function giving ``codec``'s continuous latents ``[B, D, F]`` from ``wav [B, C, T]``, if any."""
    if callable(getattr(codec, "encode_latents", None)):
        return cast(LatentCodec, codec).encode_latents
    # An instance of these classes implies their module is imported: check without importing them.
    mel_module = sys.modules.get("stylecond.codecs.mel_codec")
    if mel_module is not None and isinstance(codec, mel_module.MelCodec):
        return lambda wav: cast(Any, codec).features(wav).transpose(1, 2)
    encodec_module = sys.modules.get("stylecond.codecs.encodec")
    if encodec_module is not None and isinstance(codec, encodec_module.EncodecCodec):

        def encodec_latents(wav: Tensor) -> Tensor:
            model: Any = cast(Any, codec).load().model
            assert model is not None
            if next(model.parameters()).device != wav.device:
                model.to(wav.device)
            return model.encoder(wav)

        return encodec_latents
    return None


class CodecEmbedder(AudioEmbedder):
    """Pooled representation of a (frozen) :class:`~stylecond.codecs.base.AudioCodec`.

    ``representation="latents"`` pools the continuous encoder output over frames: the pre-quantization
    encoder output for :class:`~stylecond.codecs.encodec.EncodecCodec`, the log-mel frames for
    :class:`~stylecond.codecs.mel_codec.MelCodec`, and ``encode_latents(wav [B, C, T]) -> [B, D, F]`` for
    any other codec that defines it. ``"codes"`` works with any codec: per codebook, the normalised
    histogram of the code indices over frames, concatenated (``D = num_codebooks * cardinality``).
    ``"auto"`` uses latents when the codec has them and codes otherwise.

    Args:
        codec: The codec; its ``sample_rate`` and ``channels`` define the input (other rates are resampled,
            channels are averaged / repeated).
        representation: ``"auto"``, ``"latents"`` or ``"codes"``.
        pooling: Pooling of latents over frames, ``"mean"`` or ``"max"``.
    """

    def __init__(
        self,
        *,
        codec: AudioCodec,
        representation: Literal["auto", "latents", "codes"] = "auto",
        pooling: Literal["mean", "max"] = "mean",
    ) -> None:
        super().__init__()
        if representation not in ("auto", "latents", "codes"):
            raise ValueError(f"representation must be 'auto', 'latents' or 'codes', got {representation!r}")
        if pooling not in ("mean", "max"):
            raise ValueError(f"pooling must be 'mean' or 'max', got {pooling!r}")
        has_latents = _latent_fn(codec) is not None
        if representation == "latents" and not has_latents:
            raise ValueError(
                f"representation='latents' needs an EncodecCodec, a MelCodec or a codec with encode_latents(); "
                f"{type(codec).__name__} is none of them "
                "(use representation='codes')"
            )
        self.representation: Literal["latents", "codes"] = (
            ("latents" if has_latents else "codes") if representation == "auto" else representation
        )
        self.pooling = pooling
        freeze_(codec)
        self.codec: AudioCodec = codec
        exclude_from_checkpoint(self, "codec")
        self._dim: int | None = None

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    @property
    def name(self) -> str:
        return f"codec:{self.codec.codec_id}:{self.representation}"

    @property
    def dim(self) -> int:
        if self.representation == "codes":
            return int(self.codec.num_codebooks) * int(self.codec.cardinality)
        if self._dim is None:
            device = next(iter(self.codec.parameters()), torch.empty(0)).device
            probe = torch.zeros(1, int(self.codec.channels), self.sample_rate, device=device)
            self._dim = int(self(probe).shape[-1])
        return self._dim

    def _match_channels(self, wav: Tensor) -> Tensor:
        channels = int(self.codec.channels)
        if wav.shape[1] == channels:
            return wav
        return wav.mean(dim=1, keepdim=True).expand(-1, channels, -1).contiguous()

    def embed(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` -> ``[B, D]``."""
        wav = self._match_channels(wav)
        if self.representation == "latents":
            latent_fn = _latent_fn(self.codec)
            assert latent_fn is not None
            latents = latent_fn(wav).float()  # [B, D, F]
            return latents.mean(dim=-1) if self.pooling == "mean" else latents.amax(dim=-1)
        codes = self.codec.encode(wav)  # [B, K, F]
        card = int(self.codec.cardinality)
        b, k, f = codes.shape
        valid = (codes >= 0) & (codes < card)
        onehot = torch.zeros(b, k, card, device=codes.device)
        onehot.scatter_add_(2, codes.clamp(0, card - 1), valid.float())
        hist = onehot / valid.sum(dim=-1, keepdim=True).clamp_min(1)
        return hist.reshape(b, k * card)
