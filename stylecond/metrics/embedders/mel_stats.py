"""Weight-free offline default embedder: statistics of the log-mel spectrogram."""

from __future__ import annotations

import torch
from torch import Tensor

from stylecond.mel import MelSpectrogram
from stylecond.metrics.embedders.base import AudioEmbedder


class MelStatsEmbedder(AudioEmbedder):
    """Mean and standard deviation over time of the log-mel spectrogram and of its frame deltas.

    No weights, deterministic, works offline: ``dim = 4 * n_mels`` (mean, std, delta mean, |delta| mean).
    A crude timbre/loudness/brightness summary, good for smoke tests and relative comparisons, not a
    substitute for a learned embedding (VGGish, CLAP, MERT) when numbers are compared with the literature.

    Args:
        sample_rate: Rate the spectrogram is computed at (input of another rate is resampled), Hz.
        n_mels: Number of mel bands.
        n_fft: FFT size.
        hop_length: Hop between frames in samples.
    """

    def __init__(
        self, *, sample_rate: int = 16000, n_mels: int = 64, n_fft: int = 1024, hop_length: int = 256
    ) -> None:
        super().__init__()
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
        if n_mels < 1:
            raise ValueError(f"n_mels must be >= 1, got {n_mels}")
        self._sample_rate = sample_rate
        self.n_mels = n_mels
        self.mel = MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, log=False
        )

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def name(self) -> str:
        return f"mel_stats:{self._sample_rate // 1000}k:{self.n_mels}"

    @property
    def dim(self) -> int:
        return 4 * self.n_mels

    def embed(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` -> ``[B, 4 * n_mels]``."""
        if wav.shape[-1] <= self.mel.n_fft // 2:
            wav = torch.nn.functional.pad(wav, (0, self.mel.n_fft // 2 + 1 - wav.shape[-1]))
        logmel = torch.log10(self.mel(wav).clamp_min(1e-10))  # [B, M, F], floor at -100 dB (power)
        mean = logmel.mean(dim=-1)
        std = logmel.std(dim=-1, unbiased=False)
        if logmel.shape[-1] > 1:
            delta = logmel.diff(dim=-1)
            delta_mean = delta.mean(dim=-1)
            delta_abs = delta.abs().mean(dim=-1)
        else:
            delta_mean = delta_abs = torch.zeros_like(mean)
        return torch.cat([mean, std, delta_mean, delta_abs], dim=-1)
