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

    filterbank: Tensor  # [n_freq, n_mels]
    window: Tensor  # [n_fft]

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
        # float64 copy kept off the module (buffers must stay float32-castable, e.g. for MPS).
        self._filterbank64 = torch.from_numpy(fb).double()
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
        if wav.shape[-1] <= self.n_fft // 2:
            raise ValueError(
                f"wav needs more than n_fft // 2 = {self.n_fft // 2} samples (reflect padding), got {wav.shape[-1]}"
            )
        # float64 input is computed in float64 (exact parity checks); anything else in float32.
        if wav.dtype == torch.float64:
            dtype = torch.float64
            window = torch.hann_window(self.n_fft, periodic=True, dtype=dtype, device=wav.device)
            filterbank = self._filterbank64.to(wav.device)
        else:
            dtype, window, filterbank = torch.float32, self.window.float(), self.filterbank.float()
        spec = torch.stft(
            wav.to(dtype),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # [B, n_freq, F]
        mag = spec.abs().pow(self.power)
        mel = torch.einsum("bfn,fm->bmn", mag, filterbank)  # [B, M, F]
        if self.log:
            mel = torch.log(mel.clamp_min(self.mel_floor))
        return mel
