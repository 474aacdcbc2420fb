"""A user's own ONNX audio model as an embedder (onnxruntime, optional extra ``stylecond[onnx]``)."""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from stylecond.metrics.embedders.base import AudioEmbedder


class OnnxAudioEmbedder(AudioEmbedder):
    """Run an ONNX model on waveforms with onnxruntime (CPU by default), loaded lazily.

    The model takes one float32 input, ``[B, C, T]`` (``input_layout="BCT"``) or mono ``[B, T]``
    (``"BT"``), and returns ``[B, D]`` or frame features ``[B, F, D]`` (mean-pooled over frames).

    Args:
        path: The ``.onnx`` file.
        sample_rate: Input rate of the model in Hz (other rates are resampled).
        input_layout: ``"BCT"`` (channels kept, or averaged / repeated to ``channels``) or ``"BT"`` (mono).
        channels: Channel count the model expects with ``"BCT"``.
        output_index: Which of the model's outputs is the embedding.
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
    """

    def __init__(
        self,
        *,
        path: str | os.PathLike[str],
        sample_rate: int,
        input_layout: Literal["BCT", "BT"] = "BCT",
        channels: int = 1,
        output_index: int = 0,
        providers: list[str] | None = None,
    ) -> None:
        super().__init__()
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
        if input_layout not in ("BCT", "BT"):
            raise ValueError(f"input_layout must be 'BCT' or 'BT', got {input_layout!r}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.path = os.fspath(path)
        self._sample_rate = sample_rate
        self.input_layout = input_layout
        self.channels = channels
        self.output_index = output_index
        self.providers = providers or ["CPUExecutionProvider"]
        self._session: Any = None
        self._dim: int | None = None

    def load(self) -> Any:
        """Create the onnxruntime session (once) and return it."""
        if self._session is None:
            try:
                import onnxruntime as ort
            except ImportError as err:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "OnnxAudioEmbedder needs onnxruntime: pip install 'stylecond[onnx]'"
                ) from err
            if not os.path.isfile(self.path):
                raise ValueError(f"path: ONNX model file not found: {self.path}")
            session = ort.InferenceSession(self.path, providers=self.providers)
            n_out = len(session.get_outputs())
            if not -n_out <= self.output_index < n_out:
                raise ValueError(
                    f"output_index must be in [{-n_out}, {n_out - 1}] for {self.path}, got {self.output_index}"
                )
            self._session = session
        return self._session

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def name(self) -> str:
        return f"onnx:{os.path.basename(self.path)}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            last = self.load().get_outputs()[self.output_index].shape[-1]
            if isinstance(last, int):
                self._dim = last
            else:
                self._dim = int(self(torch.zeros(1, self.channels, self.sample_rate)).shape[-1])
        return self._dim

    def embed(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` -> ``[B, D]``."""
        session = self.load()
        if self.input_layout == "BT":
            x = wav.mean(dim=1)
        elif wav.shape[1] != self.channels:
            x = wav.mean(dim=1, keepdim=True).expand(-1, self.channels, -1)
        else:
            x = wav
        feed = {
            session.get_inputs()[0].name: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        }
        out = torch.from_numpy(np.asarray(session.run(None, feed)[self.output_index])).to(wav.device).float()
        if out.dim() == 3:
            out = out.mean(dim=1)
        if out.dim() != 2 or out.shape[0] != wav.shape[0]:
            raise ValueError(f"{self.name}: output must be [B, D] or [B, F, D], got shape {tuple(out.shape)}")
        return out
