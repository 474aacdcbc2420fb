"""Weight-free log-mel features: the offline default extractor."""

from __future__ import annotations

from torch import Tensor

from stylecond.features.base import AudioFeatureExtractor
from stylecond.mel import MelSpectrogram


class MelFeatures(AudioFeatureExtractor):
    """Log-mel frames ``[B, F, n_mels]`` of the mono mix, with a fixed affine normalisation.

    No weights to download or train: the offline default for the style conditioner. With the
    defaults (16 kHz, hop 320) the frame rate is 50 Hz.

    Args:
        sample_rate: input sample rate in Hz.
        n_mels: mel bands (feature dimension).
        hop_length: samples between frames (frame rate = sample_rate / hop_length).
        n_fft: FFT size.
        f_min: lowest mel frequency in Hz.
        f_max: highest mel frequency in Hz (None = Nyquist).
        mel_floor: floor before the log.
        mean: subtracted from the log-mel values.
        std: divides the centred log-mel values.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_mels: int = 64,
        hop_length: int = 320,
        n_fft: int = 1024,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_floor: float = 1e-5,
        mean: float = -4.0,
        std: float = 4.0,
    ) -> None:
        super().__init__()
        if std <= 0:
            raise ValueError(f"std must be > 0; got {std}")
        self.mel = MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            mel_floor=mel_floor,
        )
        self.mean = mean
        self.std = std

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.mel.frame_rate

    @property
    def dim(self) -> int:
        return self.mel.n_mels

    @property
    def frozen(self) -> bool:
        return True

    def num_frames(self, num_samples: int) -> int:
        return self.mel.num_frames(num_samples)

    def forward(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` -> ``[B, F, n_mels]`` with ``F = T // hop + 1``."""
        mono = self._check_wav(wav)
        return ((self.mel(mono) - self.mean) / self.std).transpose(1, 2)
