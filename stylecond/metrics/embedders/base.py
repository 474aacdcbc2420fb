"""Abstract audio embedder: waveforms in, one embedding per clip (or per chunk) out."""

from __future__ import annotations

import abc
import math

import julius
import torch
from torch import Tensor, nn


class AudioEmbedder(nn.Module, abc.ABC):
    """A frozen model mapping waveforms ``[B, C, T]`` to embeddings ``[B, D]``.

    Subclasses implement :meth:`embed` at their own :attr:`sample_rate`; :meth:`forward` validates the
    input, resamples it (julius) when another rate is given and runs without gradients. The module always
    stays in eval mode.
    """

    def __init__(self) -> None:
        super().__init__()
        self.training = False

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Sample rate the model expects (Hz)."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Short identifier of the embedding, written next to every reported number."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Embedding size ``D``."""

    @abc.abstractmethod
    def embed(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` at :attr:`sample_rate` (finite, validated) -> ``[B, D]``."""

    def train(self, mode: bool = True) -> AudioEmbedder:
        """Embedders are frozen: stay in eval mode whatever ``mode`` is."""
        return super().train(False)

    def prepare(self, wav: Tensor, sample_rate: int | None = None) -> Tensor:
        """Check ``wav`` (``[B, T]`` or ``[B, C, T]``) and resample it to :attr:`sample_rate` -> ``[B, C, T]``."""
        if not isinstance(wav, Tensor):
            raise ValueError(f"wav must be a torch.Tensor [B, C, T], got {type(wav).__name__}")
        if wav.dim() == 2:
            wav = wav.unsqueeze(1)
        if wav.dim() != 3:
            raise ValueError(f"wav must be [B, T] or [B, C, T], got shape {tuple(wav.shape)}")
        if wav.shape[0] == 0 or wav.shape[1] == 0 or wav.shape[-1] == 0:
            raise ValueError(f"wav must be non-empty, got shape {tuple(wav.shape)}")
        if not torch.is_floating_point(wav):
            raise ValueError(f"wav must be a floating-point tensor, got dtype {wav.dtype}")
        if not bool(torch.isfinite(wav).all()):
            raise ValueError("wav contains NaN or inf values")
        if sample_rate is not None:
            if sample_rate <= 0:
                raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
            if sample_rate != self.sample_rate:
                wav = julius.resample_frac(wav.float(), int(sample_rate), int(self.sample_rate))
        return wav.float()

    def forward(self, wav: Tensor, sample_rate: int | None = None) -> Tensor:
        """``wav [B, C, T]`` (or ``[B, T]``) at ``sample_rate`` (default: :attr:`sample_rate`) -> ``[B, D]``."""
        wav = self.prepare(wav, sample_rate)
        with torch.no_grad():
            out = self.embed(wav)
        if out.dim() != 2 or out.shape[0] != wav.shape[0]:
            raise ValueError(f"{self.name}: embed() must return [B, D], got shape {tuple(out.shape)}")
        return out

    def embed_chunks(
        self,
        wav: Tensor,
        chunk_seconds: float,
        *,
        sample_rate: int | None = None,
        hop_seconds: float | None = None,
    ) -> Tensor:
        """Embed consecutive chunks of each clip: ``wav [B, C, T]`` -> ``[B, N, D]``.

        Chunks are ``chunk_seconds`` long, every ``hop_seconds`` (default: ``chunk_seconds``, no overlap);
        a trailing partial chunk is dropped, except that a clip shorter than one chunk gives one
        (shorter) chunk.
        """
        if not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be > 0, got {chunk_seconds}")
        hop_s = chunk_seconds if hop_seconds is None else hop_seconds
        if not hop_s > 0:
            raise ValueError(f"hop_seconds must be > 0, got {hop_seconds}")
        wav = self.prepare(wav, sample_rate)
        length = max(1, round(chunk_seconds * self.sample_rate))
        hop = max(1, round(hop_s * self.sample_rate))
        total = wav.shape[-1]
        if total <= length:
            chunks = wav.unsqueeze(1)  # [B, 1, C, T]
        else:
            n = 1 + math.floor((total - length) / hop)
            chunks = wav.unfold(-1, length, hop)[..., :n, :].transpose(1, 2)  # [B, N, C, L]
        b, n_chunks = chunks.shape[:2]
        with torch.no_grad():
            out = self.embed(chunks.reshape(b * n_chunks, *chunks.shape[2:]).contiguous())
        return out.reshape(b, n_chunks, -1)


def pool_frames(hidden: Tensor, pooling: str) -> Tensor:
    """Pool frame features ``[B, F, D]`` over frames with ``"mean"``, ``"max"`` or ``"cls"`` (first) -> ``[B, D]``."""
    if pooling == "mean":
        return hidden.mean(dim=1)
    if pooling == "max":
        return hidden.amax(dim=1)
    if pooling == "cls":
        return hidden[:, 0]
    raise ValueError(f"pooling must be 'mean', 'max' or 'cls', got {pooling!r}")
