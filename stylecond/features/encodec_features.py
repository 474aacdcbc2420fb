"""Codec-token features: the first k codebooks of a frozen AudioCodec, each embedded and summed."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stylecond.codecs.base import AudioCodec
from stylecond.features.base import AudioFeatureExtractor
from stylecond.utils.frozen import exclude_from_checkpoint, freeze_


class EncodecFeatures(AudioFeatureExtractor):
    """Tokens of the first ``num_codebooks`` codebooks of ``codec``, one trainable embedding per codebook, summed.

    The codec is frozen and left out of checkpoints (it is rebuilt from its own config); the
    embeddings are trained with the owner. Frames come at ``codec.frame_rate`` (50 Hz for EnCodec 32 kHz).

    Args:
        codec: the frozen tokenizer (e.g. ``EncodecCodec`` or ``MelCodec``).
        num_codebooks: leading codebooks used, in 1..codec.num_codebooks.
        dim: embedding dimension D.
    """

    def __init__(self, *, codec: AudioCodec, num_codebooks: int = 3, dim: int = 512) -> None:
        super().__init__()
        if not 1 <= num_codebooks <= codec.num_codebooks:
            raise ValueError(
                f"num_codebooks must be in 1..{codec.num_codebooks} (codec.num_codebooks); got {num_codebooks}"
            )
        freeze_(codec)
        self.codec: AudioCodec = codec
        exclude_from_checkpoint(self, "codec")
        self.num_codebooks = num_codebooks
        self._dim = dim
        self.embeddings = nn.ModuleList([nn.Embedding(codec.cardinality, dim) for _ in range(num_codebooks)])

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def frozen(self) -> bool:
        return False

    def num_frames(self, num_samples: int) -> int:
        return self.codec.num_frames(num_samples)

    def train(self, mode: bool = True) -> EncodecFeatures:
        super().train(mode)
        self.codec.eval()
        return self

    def forward(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` at the codec's sample rate -> ``[B, F, dim]``."""
        self._check_wav(wav)
        with torch.no_grad():
            codes = self.codec.encode(wav)[:, : self.num_codebooks]  # [B, k, F]
        out = self.embeddings[0](codes[:, 0])
        for k in range(1, self.num_codebooks):
            out = out + self.embeddings[k](codes[:, k])
        return out
