"""Batched mel spectrogram with ``torch.stft`` and transformers' mel filterbank (no torchaudio)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers.audio_utils import mel_filter_bank


class MelSpectrogram(nn.Module):
    """Log-mel (or linear mel) spectrogram of a batch of waveforms, on any device.

    Matches ``transformers.audio_utils.spectrogram`` with a periodic Hann window, ``center=True``,
    reflect padding and the same ``mel_filter_bank`` (HTK scale, no norm by default).
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = None,
        power: float = 2.0,
        log: bool = True,
        mel_floor: float = 1e-10,
        norm: str | None = None,
        mel_scale: str = "htk",
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.power = power
        self.log = log
        self.mel_floor = mel_floor
        fb = mel_filter_bank(
            num_frequency_bins=n_fft // 2 + 1,
            num_mel_filters=n_mels,
            min_frequency=f_min,
            max_frequency=f_max if f_max is not None else sample_rate / 2,
            sampling_rate=sample_rate,
            norm=norm,
            mel_scale=mel_scale,
        )
        self.register_buffer("filterbank", torch.from_numpy(fb).float(), persistent=False)  # [n_freq, M]
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples (``center=True``)."""
        return num_samples // self.hop_length + 1

    def forward(self, wav: Tensor) -> Tensor:
        """``wav [B, T]`` or ``[B, C, T]`` (channels averaged) -> mel ``[B, n_mels, F]``."""
        if wav.dim() == 3:
            wav = wav.mean(dim=1)
        if wav.dim() != 2:
            raise ValueError(f"wav must be [B, T] or [B, C, T], got shape {tuple(wav.shape)}")
        spec = torch.stft(
            wav.float(),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # [B, n_freq, F]
        mag = spec.abs().pow(self.power)
        mel = torch.einsum("bfn,fm->bmn", mag, self.filterbank)  # [B, M, F]
        if self.log:
            mel = torch.log(mel.clamp_min(self.mel_floor))
        return mel
