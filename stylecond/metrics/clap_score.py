"""CLAP text-audio similarity with transformers' ClapModel (loaded lazily by hub name or local path)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import julius
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from stylecond.metrics.embedders.hf_audio import display_name, feature_inputs
from stylecond.utils.frozen import exclude_from_checkpoint, freeze_


class CLAPScore(Metric):
    """Mean cosine similarity between CLAP embeddings of each clip and its text (higher is better).

    The model (e.g. ``laion/clap-htsat-unfused``) and its processor (feature extractor + tokenizer) are
    loaded on first use and frozen; the model is left out of ``state_dict()``. Audio longer than the
    feature extractor's ``max_length_s`` is cropped by the extractor's own truncation rule.

    Args:
        model_name_or_path: Hub name or local directory of a ``ClapModel`` with its processor files.
        local_files_only: Never contact the hub.
        max_text_length: Texts are truncated to this many tokens.
        revision: Hub revision (branch, tag or commit) to load.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    score_sum: Tensor
    count: Tensor

    def __init__(
        self,
        *,
        model_name_or_path: str,
        local_files_only: bool = False,
        max_text_length: int = 77,
        revision: str | None = None,
    ) -> None:
        super().__init__()
        self.model_name_or_path = model_name_or_path
        self.revision = revision
        self.local_files_only = local_files_only
        self.max_text_length = max_text_length
        self.feature_extractor: Any = None
        self.tokenizer: Any = None
        self.model: nn.Module | None = None
        exclude_from_checkpoint(self, "model")
        self.add_state("score_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    @property
    def embedding_name(self) -> str:
        """Name of the CLAP model behind the numbers."""
        return f"hf-clap:{display_name(self.model_name_or_path)}"

    def load(self) -> None:
        """Load the processor and the frozen model (no-op when loaded)."""
        if self.model is not None:
            return
        from transformers import AutoProcessor, ClapModel

        hub: dict[str, Any] = {"local_files_only": self.local_files_only, "revision": self.revision}
        processor = AutoProcessor.from_pretrained(self.model_name_or_path, **hub)
        model = ClapModel.from_pretrained(self.model_name_or_path, **hub)
        self.feature_extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        self.model = freeze_(model).to(self.device)

    @property
    def sample_rate(self) -> int:
        """Audio rate of the CLAP feature extractor (loads the model)."""
        self.load()
        return int(self.feature_extractor.sampling_rate)

    def _model_device(self) -> torch.device:
        assert self.model is not None
        return next(self.model.parameters()).device

    @torch.no_grad()
    def audio_embeddings(self, wav: Tensor, sample_rate: int) -> Tensor:
        """``wav [B, C, T]`` (or ``[B, T]``) at ``sample_rate`` -> L2-normalised ``[B, D]``."""
        if wav.dim() == 2:
            wav = wav.unsqueeze(1)
        if wav.dim() != 3 or wav.shape[-1] == 0:
            raise ValueError(
                f"audio must be waveforms [B, C, T] or embeddings [B, D], got {tuple(wav.shape)}"
            )
        if not bool(torch.isfinite(wav).all()):
            raise ValueError("audio contains NaN or inf values")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
        self.load()
        assert self.model is not None
        if sample_rate != self.sample_rate:
            wav = julius.resample_frac(wav.float(), sample_rate, self.sample_rate)
        inputs = feature_inputs(self.feature_extractor, wav, self.sample_rate)
        keep = {
            k: v.to(self._model_device()) for k, v in inputs.items() if k in ("input_features", "is_longer")
        }
        out = self.model.get_audio_features(**keep)  # type: ignore[operator]
        return F.normalize(out.pooler_output.float(), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> Tensor:
        """Texts -> L2-normalised ``[B, D]``."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a sequence of strings")
        self.load()
        assert self.model is not None
        tok = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_text_length, return_tensors="pt"
        )
        out = self.model.get_text_features(  # type: ignore[operator]
            input_ids=tok["input_ids"].to(self._model_device()),
            attention_mask=tok["attention_mask"].to(self._model_device()),
        )
        return F.normalize(out.pooler_output.float(), dim=-1)

    def update(self, audio: Tensor, texts: Sequence[str], *, sample_rate: int | None = None) -> None:
        """Add ``audio`` and its ``texts``: waveforms ``[B, C, T]`` (or ``[B, T]`` when ``sample_rate`` is
        given) at ``sample_rate`` (default: the CLAP extractor's rate), or CLAP audio embeddings ``[B, D]``."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a sequence of strings")
        if audio.dim() == 2 and sample_rate is None:
            a = F.normalize(audio.detach().float(), dim=-1)
        else:
            a = self.audio_embeddings(audio, sample_rate if sample_rate is not None else self.sample_rate)
        if len(texts) != a.shape[0]:
            raise ValueError(f"texts has {len(texts)} entries but audio has batch size {a.shape[0]}")
        t = self.text_embeddings(texts).to(a.device)
        if t.shape[-1] != a.shape[-1]:
            raise ValueError(f"audio embedding size {a.shape[-1]} differs from CLAP's {t.shape[-1]}")
        self.score_sum = self.score_sum + (a * t).sum(dim=-1).double().sum().to(self.score_sum.device)
        self.count = self.count + a.shape[0]

    def compute(self) -> Tensor:
        """Mean cosine similarity in [-1, 1]."""
        if float(self.count) == 0:
            raise ValueError("CLAPScore.compute() called before any update()")
        return self.score_sum / self.count
