"""EnCodec through ``transformers.EncodecModel``, loaded lazily by hub name or local path."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from stylecond.codecs.base import AudioCodec
from stylecond.utils.frozen import exclude_from_checkpoint, freeze_
from stylecond.utils.hf_component import load_component


class EncodecCodec(AudioCodec):
    """Frozen EnCodec tokenizer (``facebook/encodec_32khz`` by default: 32 kHz mono, 50 Hz, 4 x 2048).

    Nothing is read at construction: the config is read on the first property access, the weights
    on the first :meth:`encode`/:meth:`decode` or an explicit :meth:`load`. The model stays a
    submodule (it follows ``.to()``) but is frozen and left out of ``state_dict()``.
    Only non-chunked, non-normalising models (the 24 and 32 kHz ones) are accepted: their codes alone
    decode to audio, with no per-chunk scales to carry.

    Args:
        model_name_or_path: Hugging Face hub name or local folder of an ``EncodecModel``.
        bandwidth: target bandwidth in kbps, one of the model's ``target_bandwidths`` (sets the number
            of codebooks K = floor(bandwidth * 1000 / (log2(card) * frame_rate))). ``None`` picks the
            smallest (2.2 kbps = 4 codebooks for encodec_32khz; 1.5 kbps = 2 for encodec_24khz).
        revision: hub revision (branch, tag or commit) to load.
        local_files_only: never contact the hub (also implied by ``HF_HUB_OFFLINE=1``).
        component: load the EnCodec sub-model of a composite checkpoint instead (e.g. ``audio_encoder``
            of a transformers MusicGen repository).
    """

    def __init__(
        self,
        *,
        model_name_or_path: str = "facebook/encodec_32khz",
        bandwidth: float | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        component: str | None = None,
    ) -> None:
        super().__init__()
        if bandwidth is not None and not (math.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(f"bandwidth must be a positive number of kbps, got {bandwidth}")
        self.model_name_or_path = str(model_name_or_path)
        self._requested_bandwidth = bandwidth
        self.revision = revision
        self.local_files_only = local_files_only
        self.component = component
        self._config: Any = None
        self.model: torch.nn.Module | None = None
        exclude_from_checkpoint(self, "model")

    # ---------------------------------------------------------------- lazy loading
    def _hub_kwargs(self) -> dict[str, Any]:
        return {"revision": self.revision, "local_files_only": self.local_files_only}

    @property
    def config(self) -> Any:
        """The ``EncodecConfig`` (read on first access)."""
        if self._config is None:
            from transformers import AutoConfig, EncodecConfig

            config = AutoConfig.from_pretrained(self.model_name_or_path, **self._hub_kwargs())
            if self.component is not None:
                config = getattr(config, self.component, None)
            if not isinstance(config, EncodecConfig):
                what = self.model_name_or_path + (
                    f" (component {self.component!r})" if self.component else ""
                )
                raise ValueError(
                    f"model_name_or_path {what} is a {type(config).__name__}, not an EncodecConfig"
                )
            if config.chunk_length_s is not None or config.normalize:
                raise ValueError(
                    f"model_name_or_path {self.model_name_or_path!r} is a chunked/normalising EnCodec "
                    "(chunk_length_s or normalize set, e.g. encodec_48khz): its codes need per-chunk scales; "
                    "use a 24 or 32 kHz model"
                )
            bw = self._requested_bandwidth
            valid = [float(b) for b in config.target_bandwidths]
            if bw is not None and not any(math.isclose(bw, b) for b in valid):
                raise ValueError(
                    f"bandwidth must be one of {valid} kbps for {self.model_name_or_path!r}, got {bw}"
                )
            self._config = config
        return self._config

    def load(self) -> EncodecCodec:
        """Load the weights now (idempotent). Returns ``self``."""
        if self.model is None:
            from transformers import EncodecModel

            config = self.config
            loaded: Any
            if self.component is not None:
                loaded = load_component(self.model_name_or_path, self.component, **self._hub_kwargs())
            else:
                loaded = EncodecModel.from_pretrained(self.model_name_or_path, **self._hub_kwargs())
            if loaded.config.codebook_size != config.codebook_size:
                raise ValueError(f"{self.model_name_or_path!r}: model and config disagree on codebook_size")
            self.model = freeze_(loaded.float())
        return self

    def materialize(self) -> None:
        self.load()

    def _loaded(self, device: torch.device) -> Any:
        model = self.load().model
        assert model is not None
        if next(model.parameters()).device != device:
            model.to(device)
        return model

    # ---------------------------------------------------------------- properties
    @property
    def bandwidth(self) -> float:
        """Bandwidth in kbps actually used."""
        bws = [float(b) for b in self.config.target_bandwidths]
        req = self._requested_bandwidth
        return min(bws) if req is None else next(b for b in bws if math.isclose(b, req))

    @property
    def sample_rate(self) -> int:
        return int(self.config.sampling_rate)

    @property
    def channels(self) -> int:
        return int(self.config.audio_channels)

    @property
    def hop_length(self) -> int:
        return int(math.prod(self.config.upsampling_ratios))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def cardinality(self) -> int:
        return int(self.config.codebook_size)

    @property
    def num_codebooks(self) -> int:
        bits_per_q = math.log2(self.cardinality) * self.frame_rate
        return max(1, int(math.floor(self.bandwidth * 1000 / bits_per_q + 1e-9)))

    @property
    def codec_id(self) -> str:
        source = self.model_name_or_path + (f"/{self.component}" if self.component else "")
        return f"encodec:{source}:{self.bandwidth:g}"

    # ---------------------------------------------------------------- coding
    @torch.no_grad()
    def encode(self, wav: Tensor, *, lengths: Tensor | None = None) -> Tensor:
        """``wav [B, C, T]`` -> codes ``[B, K, ceil(T / hop)]`` long.

        ``lengths [B]`` (valid samples per item) zeroes the padding of a batch of unequal clips; the
        frames past ``num_frames(length)`` of an item then encode silence and should be masked.
        """
        wav = self._check_wav(wav)
        model = self._loaded(wav.device)
        padding_mask = None
        if lengths is not None:
            if lengths.shape != (wav.shape[0],) or bool(
                (lengths < 1).any() | (lengths > wav.shape[-1]).any()
            ):
                raise ValueError(f"lengths must be [B={wav.shape[0]}] with values in 1..{wav.shape[-1]} (T)")
            steps = torch.arange(wav.shape[-1], device=wav.device)
            padding_mask = (steps[None, :] < lengths.to(wav.device)[:, None])[:, None, :]  # [B, 1, T]
            padding_mask = padding_mask.expand_as(wav)
        out = model.encode(wav.float(), padding_mask=padding_mask, bandwidth=self.bandwidth, return_dict=True)
        codes = out.audio_codes  # [n_chunks=1, B, K, F]
        if codes.shape[0] != 1:
            raise RuntimeError(f"expected a single EnCodec chunk, got {codes.shape[0]}")
        codes = codes[0].long()
        expected = self.num_frames(wav.shape[-1])
        if codes.shape[1] != self.num_codebooks or codes.shape[-1] != expected:
            raise RuntimeError(
                f"EnCodec returned codes {tuple(codes.shape)}, expected [B, {self.num_codebooks}, {expected}]"
            )
        return codes

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """``codes [B, K, F]`` -> ``wav [B, C, F * hop]`` (float32)."""
        codes = self._check_codes(codes)
        model = self._loaded(codes.device)
        # one chunk, no scales (non-normalising model), nothing padded in the last chunk
        out = model.decode(codes[None], [None], return_dict=True, last_frame_pad_length=0)
        wav = out.audio_values.float()
        return wav[..., : codes.shape[-1] * self.hop_length]
