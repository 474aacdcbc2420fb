"""Abstract audio feature extractor: ``wav [B, C, T] -> features [B, F, D]`` at a fixed frame rate."""

from __future__ import annotations

import abc
import math

from torch import Tensor, nn


class AudioFeatureExtractor(nn.Module, abc.ABC):
    """Turns a batch of waveforms at :attr:`sample_rate` into ``D``-dim frames at :attr:`frame_rate` Hz.

    Frozen extractors (:attr:`frozen`) have no trainable weights, stay in eval mode and keep their
    pretrained weights out of checkpoints (they are reloaded by name or path); they still move with
    ``.to()``. Lazily loaded extractors load in :meth:`load` (called on first use or by the owner's
    ``configure_model``).
    """

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Sample rate (Hz) expected by :meth:`forward`."""

    @property
    @abc.abstractmethod
    def frame_rate(self) -> float:
        """Feature frames per second."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Feature dimension D."""

    @property
    @abc.abstractmethod
    def frozen(self) -> bool:
        """True if the extractor has no trainable parameters."""

    @abc.abstractmethod
    def forward(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` at :attr:`sample_rate` -> features ``[B, F, D]``."""

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples (default ``ceil(T * frame_rate / sample_rate)``)."""
        return math.ceil(num_samples * self.frame_rate / self.sample_rate - 1e-6)

    def load(self) -> None:  # noqa: B027 - optional hook
        """Load pretrained weights, if any (no-op for weight-free extractors)."""

    def train(self, mode: bool = True) -> AudioFeatureExtractor:
        """Frozen extractors always stay in eval mode."""
        return super().train(False if self.frozen else mode)

    @staticmethod
    def _check_wav(wav: Tensor, name: str = "wav") -> Tensor:
        """Validate ``wav [B, C, T]`` (float, T > 0) and return its mono mix ``[B, T]``."""
        if wav.dim() != 3 or wav.shape[-1] == 0 or not wav.is_floating_point():
            raise ValueError(
                f"{name} must be a float tensor [B, C, T] with T > 0; got {tuple(wav.shape)} {wav.dtype}"
            )
        return wav.mean(dim=1)
