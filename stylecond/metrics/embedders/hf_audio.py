"""Any Hugging Face transformers audio model as an embedder (CLAP audio tower or pooled hidden states)."""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
from torch import Tensor, nn

from stylecond.features.mert import audio_encoder_config, load_audio_encoder
from stylecond.metrics.embedders.base import AudioEmbedder, pool_frames
from stylecond.utils.frozen import exclude_from_checkpoint, freeze_


def display_name(model_name_or_path: str | os.PathLike[str]) -> str:
    """Hub names as they are, local directories by their last component."""
    text = os.fspath(model_name_or_path)
    return os.path.basename(os.path.normpath(text)) if os.path.isdir(text) else text


def feature_inputs(feature_extractor: Any, wav: Tensor, sample_rate: int) -> dict[str, Tensor]:
    """Run a transformers feature extractor on ``wav [B, C, T]`` (channels averaged) -> model inputs."""
    mono = wav.mean(dim=1).detach().to("cpu", torch.float32).numpy()
    batch = feature_extractor(list(mono), sampling_rate=sample_rate, return_tensors="pt")
    return {k: v for k, v in batch.items() if isinstance(v, Tensor)}


class HFAudioEmbedder(AudioEmbedder):
    """Embeddings from a transformers audio model, loaded lazily by hub name or local path, frozen.

    A CLAP checkpoint (``config.model_type == "clap"``) gives its projected, L2-normalised audio embedding
    (``ClapModel.get_audio_features``; ``layer``/``pooling`` are then unused). Any other model is loaded
    with ``AutoModel`` and the hidden states of ``layer`` are pooled over frames. The checkpoint's feature
    extractor prepares the input when it has one; otherwise the raw mono waveform is passed as
    ``input_values``. The model is left out of ``state_dict()``.

    Args:
        model_name_or_path: Hub name (e.g. ``m-a-p/MERT-v1-95M``, ``laion/clap-htsat-unfused``) or local directory.
        sample_rate: Input rate of the model in Hz; ``None`` reads it from the feature extractor.
        layer: Index into the model's hidden states (0 = embeddings output, -1 = last layer).
        pooling: How frame features are pooled over time: ``"mean"``, ``"max"`` or ``"cls"`` (first frame).
        trust_remote_code: Allow custom model code from the checkpoint. Off by default; MERT-v1-95M does not
            need it (it loads as a native ``HubertModel``).
        local_files_only: Never contact the hub, load from the local cache or path only.
        revision: Hub revision (branch, tag or commit) to load.
    """

    def __init__(
        self,
        *,
        model_name_or_path: str,
        sample_rate: int | None = None,
        layer: int = -1,
        pooling: Literal["mean", "max", "cls"] = "mean",
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        revision: str | None = None,
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "max", "cls"):
            raise ValueError(f"pooling must be 'mean', 'max' or 'cls', got {pooling!r}")
        if sample_rate is not None and sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
        self.model_name_or_path = model_name_or_path
        self.layer = layer
        self.pooling = pooling
        self.trust_remote_code = trust_remote_code
        self.local_files_only = local_files_only
        self.revision = revision
        self._sample_rate = sample_rate
        self._config: Any = None
        self.feature_extractor: Any = None
        self.model: nn.Module | None = None
        exclude_from_checkpoint(self, "model")

    def _kwargs(self) -> dict[str, Any]:
        return {
            "trust_remote_code": self.trust_remote_code,
            "local_files_only": self.local_files_only,
            "revision": self.revision,
        }

    @property
    def config(self) -> Any:
        """The model's transformers config (loaded on first access, without the weights)."""
        if self._config is None:
            self._config = audio_encoder_config(self.model_name_or_path, **self._kwargs())
        return self._config

    @property
    def is_clap(self) -> bool:
        """True when the checkpoint is a CLAP model (its audio tower and projection are used)."""
        return getattr(self.config, "model_type", None) == "clap"

    def load(self) -> None:
        """Load the feature extractor and the frozen model (no-op when already loaded)."""
        if self.model is not None:
            return
        from transformers import AutoFeatureExtractor, ClapModel

        try:
            fe = AutoFeatureExtractor.from_pretrained(self.model_name_or_path, **self._kwargs())
        except (OSError, ValueError, KeyError):
            fe = None
        if self.is_clap and fe is None:
            raise ValueError(f"CLAP checkpoint {self.model_name_or_path!r} has no feature extractor to load")
        fe_rate = getattr(fe, "sampling_rate", None)
        if self._sample_rate is None:
            if fe_rate is None:
                raise ValueError(
                    f"sample_rate is required: {self.model_name_or_path!r} has no feature extractor rate"
                )
            self._sample_rate = int(fe_rate)
        elif fe_rate is not None and int(fe_rate) != self._sample_rate:
            raise ValueError(
                f"sample_rate={self._sample_rate} differs from the feature extractor's rate {fe_rate} "
                f"of {self.model_name_or_path!r}"
            )
        if self.is_clap:
            model = ClapModel.from_pretrained(self.model_name_or_path, **self._kwargs())
        else:
            model = load_audio_encoder(self.model_name_or_path, **self._kwargs())
        self.feature_extractor = fe
        self.model = freeze_(model)

    @property
    def sample_rate(self) -> int:
        if self._sample_rate is None:
            self.load()
        assert self._sample_rate is not None
        return self._sample_rate

    @property
    def name(self) -> str:
        base = display_name(self.model_name_or_path)
        if self.is_clap:
            return f"hf-clap:{base}"
        return f"hf:{base}:layer{self.layer}:{self.pooling}"

    @property
    def dim(self) -> int:
        cfg = self.config
        if self.is_clap:
            return int(cfg.projection_dim)
        return int(cfg.hidden_size)

    def _inputs(self, wav: Tensor) -> dict[str, Tensor]:
        assert self.model is not None
        device = next(self.model.parameters()).device
        if self.feature_extractor is not None:
            inputs = feature_inputs(self.feature_extractor, wav, self.sample_rate)
        else:
            inputs = {"input_values": wav.mean(dim=1)}
        return {k: v.to(device) for k, v in inputs.items()}

    def embed(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` -> ``[B, D]`` (CLAP: projected and L2-normalised)."""
        self.load()
        assert self.model is not None
        inputs = self._inputs(wav)
        if self.is_clap:
            keep = {k: v for k, v in inputs.items() if k in ("input_features", "is_longer")}
            out = self.model.get_audio_features(**keep)  # type: ignore[operator]
            return out.pooler_output.float()
        out = self.model(**inputs, output_hidden_states=True)
        hidden_states = getattr(out, "hidden_states", None)
        if hidden_states is None:
            raise ValueError(
                f"{self.model_name_or_path!r} returns no hidden_states; it cannot be an embedder"
            )
        n = len(hidden_states)
        if not -n <= self.layer < n:
            raise ValueError(
                f"layer must be in [{-n}, {n - 1}] for {self.model_name_or_path!r}, got {self.layer}"
            )
        return pool_frames(hidden_states[self.layer].float(), self.pooling)
