"""Hidden states of any transformers audio encoder (MERT, HuBERT, wav2vec 2.0, ...) as frozen features."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from stylecond.features.base import AudioFeatureExtractor
from stylecond.features.mert import load_audio_encoder
from stylecond.utils.frozen import exclude_from_checkpoint, freeze_


class HFAudioEncoderFeatures(AudioFeatureExtractor):
    """One hidden layer of a pretrained ``transformers`` audio encoder (``AutoModel``), frozen.

    The model is loaded lazily (first forward, :meth:`load`, or the owner's ``configure_model``) by hub
    name or local directory, never in the constructor, and is left out of checkpoints. The reference
    setting is MERT-v1-95M's last layer (768-d, 75 Hz, 24 kHz mono, raw waveform). MERT's repository ships
    its own modelling code, but MERT-v1-95M is a plain HuBERT: it loads as transformers' ``HubertModel``
    and runs no repository code (:mod:`stylecond.features.mert`). ``trust_remote_code`` stays off unless
    you pass it (then pin ``revision``).

    Args:
        model_name_or_path: hub name or local directory of the encoder.
        layer: hidden layer to return (index into ``hidden_states``; 0 = input embeddings, -1 = last).
        sample_rate: sample rate the encoder expects, in Hz.
        frame_rate: frames per second of its hidden states (sample_rate / product of its conv strides).
        dim: hidden size of the encoder (checked against its config).
        normalize_input: zero-mean, unit-variance normalise each waveform first (wav2vec 2.0 style).
        trust_remote_code: run the checkpoint's own modelling code (not needed for MERT-v1-95M).
        local_files_only: never contact the hub.
        revision: hub revision (branch, tag or commit) to load.
    """

    def __init__(
        self,
        *,
        model_name_or_path: str = "m-a-p/MERT-v1-95M",
        layer: int = -1,
        sample_rate: int = 24000,
        frame_rate: float = 75.0,
        dim: int = 768,
        normalize_input: bool = False,
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        revision: str | None = None,
    ) -> None:
        super().__init__()
        self.model_name_or_path = str(model_name_or_path)
        self.layer = layer
        self._sample_rate = sample_rate
        self._frame_rate = frame_rate
        self._dim = dim
        self.normalize_input = normalize_input
        self.trust_remote_code = trust_remote_code
        self.local_files_only = local_files_only
        self.revision = revision
        self.model: nn.Module | None = None
        self._conv: list[tuple[int, int]] | None = None
        self.register_buffer("_device_probe", torch.zeros(0), persistent=False)
        exclude_from_checkpoint(self, "model")

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def frame_rate(self) -> float:
        return self._frame_rate

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def frozen(self) -> bool:
        return True

    def load(self) -> None:
        """Load the encoder (once) onto this module's device and check its hidden size and frame rate."""
        if self.model is not None:
            return
        model = load_audio_encoder(
            self.model_name_or_path,
            revision=self.revision,
            local_files_only=self.local_files_only,
            trust_remote_code=self.trust_remote_code,
        )
        config: Any = model.config
        hidden = getattr(config, "hidden_size", None)
        if hidden != self._dim:
            raise ValueError(
                f"dim={self._dim} does not match the hidden size {hidden} of {self.model_name_or_path!r}; "
                f"pass dim={hidden}"
            )
        n_layers = int(getattr(config, "num_hidden_layers", 0))
        if n_layers and not -(n_layers + 1) <= self.layer <= n_layers:
            raise ValueError(
                f"layer must be in {-(n_layers + 1)}..{n_layers} for {self.model_name_or_path!r}; got {self.layer}"
            )
        strides, kernels = getattr(config, "conv_stride", None), getattr(config, "conv_kernel", None)
        if strides and kernels:
            self._conv = list(zip(kernels, strides))
            expected = self._sample_rate / math.prod(strides)
            if abs(expected - self._frame_rate) > 0.01 * expected:
                raise ValueError(
                    f"frame_rate={self._frame_rate} does not match {self.model_name_or_path!r}: "
                    f"sample_rate {self._sample_rate} / conv stride {math.prod(strides)} = {expected:g} Hz"
                )
        self.model = freeze_(model.to(self._device_probe.device))

    def num_frames(self, num_samples: int) -> int:
        if self._conv is None:
            return super().num_frames(num_samples)
        n = num_samples
        for kernel, stride in self._conv:
            n = max((n - kernel) // stride + 1, 0)
        return n

    def train(self, mode: bool = True) -> HFAudioEncoderFeatures:
        super().train(mode)
        if self.model is not None:
            self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` at :attr:`sample_rate` (mono mix used) -> ``[B, F, dim]``."""
        mono = self._check_wav(wav).float()
        self.load()
        assert self.model is not None
        if self.normalize_input:
            mono = (mono - mono.mean(dim=-1, keepdim=True)) / (mono.std(dim=-1, keepdim=True) + 1e-7)
        if self.layer == -1:  # the last layer: no need to keep every hidden state
            return self.model(input_values=mono).last_hidden_state
        out = self.model(input_values=mono, output_hidden_states=True)
        if out.hidden_states is None:
            raise ValueError(f"{self.model_name_or_path!r} returns no hidden states: use layer=-1")
        return out.hidden_states[self.layer]
