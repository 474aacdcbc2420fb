"""Abstract audio codec: waveform <-> discrete codes ``[B, K, F]`` (frozen, no gradients)."""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor, nn

from stylecond.audio import convert_channels


class AudioCodec(nn.Module, abc.ABC):
    """A frozen tokenizer turning audio into ``K`` parallel streams of codes at ``frame_rate`` Hz.

    ``encode(wav [B, C, T]) -> codes [B, K, F]`` (long, in ``[0, cardinality)``) and
    ``decode(codes [B, K, F]) -> wav [B, C, F * hop]``, with ``wav`` at :attr:`sample_rate`.
    Codecs never train: :meth:`train` keeps them in eval mode.
    """

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Sample rate (Hz) of the waveforms encoded and decoded."""

    @property
    @abc.abstractmethod
    def channels(self) -> int:
        """Audio channels of the waveforms decoded."""

    @property
    @abc.abstractmethod
    def frame_rate(self) -> float:
        """Code frames per second."""

    @property
    @abc.abstractmethod
    def num_codebooks(self) -> int:
        """Number of parallel code streams K."""

    @property
    @abc.abstractmethod
    def cardinality(self) -> int:
        """Entries per codebook: codes lie in ``[0, cardinality)``."""

    @property
    @abc.abstractmethod
    def codec_id(self) -> str:
        """Identifier of the codec and its settings (written into shard metadata)."""

    @abc.abstractmethod
    def encode(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` at :attr:`sample_rate` -> codes ``[B, K, F]`` long."""

    @abc.abstractmethod
    def decode(self, codes: Tensor) -> Tensor:
        """``codes [B, K, F]`` -> ``wav [B, C, T]`` at :attr:`sample_rate`."""

    @property
    def hop_length(self) -> int:
        """Samples per code frame."""
        return round(self.sample_rate / self.frame_rate)

    @property
    def bitrate(self) -> float:
        """Token bitrate in bits per second: ``K * log2(card) * frame_rate``."""
        return self.num_codebooks * math.log2(self.cardinality) * self.frame_rate

    def num_frames(self, num_samples: int) -> int:
        """Code frames produced for ``num_samples`` samples: ``ceil(num_samples / hop)``."""
        return math.ceil(num_samples / self.hop_length)

    def materialize(self) -> None:  # noqa: B027 - optional hook
        """Load lazily loaded pretrained weights now (no-op for codecs without any): owners call it from
        ``configure_model`` so EMA, FSDP and checkpointing see the whole module tree."""

    def train(self, mode: bool = True) -> AudioCodec:
        """Codecs are frozen: always stay in eval mode."""
        return super().train(False)

    # ---------------------------------------------------------------- input checks for implementations
    def _check_wav(self, wav: Tensor) -> Tensor:
        """Validate ``wav [B, C, T]`` and convert it to :attr:`channels` (mono <-> N)."""
        if wav.dim() != 3 or wav.shape[-1] == 0:
            raise ValueError(f"wav must be [B, C, T] with T > 0, got shape {tuple(wav.shape)}")
        if not wav.is_floating_point():
            raise ValueError(f"wav must be a floating-point tensor, got {wav.dtype}")
        return convert_channels(wav, self.channels)

    def _check_codes(self, codes: Tensor) -> Tensor:
        """Validate ``codes [B, K, F]``: integer, K = :attr:`num_codebooks`, values in ``[0, card)``."""
        if codes.dim() != 3 or codes.shape[1] != self.num_codebooks or codes.shape[-1] == 0:
            raise ValueError(
                f"codes must be [B, {self.num_codebooks}, F] with F > 0 (num_codebooks={self.num_codebooks}), "
                f"got shape {tuple(codes.shape)}"
            )
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise ValueError(f"codes must be an integer tensor, got {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.cardinality):
            raise ValueError(
                f"codes must lie in [0, {self.cardinality}) (cardinality), got range "
                f"[{int(codes.min())}, {int(codes.max())}]"
            )
        return codes.long()
