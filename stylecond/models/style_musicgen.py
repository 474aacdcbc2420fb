"""``StyleMusicGen``: MusicLM + codec + text and style conditioners, trained jointly (MusicGen-Style)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from stylecond.codecs.base import AudioCodec
from stylecond.conditioners.dropout import ConditioningDropout
from stylecond.conditioners.fuser import ConditionFuser
from stylecond.conditioners.style import ExcerptStart, StyleConditioner, StyleOutput, excerpt_frame_mask
from stylecond.conditioners.text import HFTextConditioner
from stylecond.conditioners.types import ConditionTensors
from stylecond.generation.settings import SamplingSettings
from stylecond.lm.music_lm import MusicLM
from stylecond.models.generation import GenerationMixin
from stylecond.models.pretrained import save_pretrained
from stylecond.utils.attached import attached_trainer
from stylecond.utils.distributed import average_batchnorm_stats_
from stylecond.utils.optim import OptimConfig, build_optimizer


@dataclass
class Conditioning:
    """What :meth:`StyleMusicGen.condition` returns.

    Attributes:
        conditions: name (``"text"``, ``"style"``) -> ``ConditionTensors [B, S, lm.dim]``.
        excerpt_span: ``[B, 2]`` seconds of each style excerpt within the target audio (anti-copy mask),
            or None when no excerpt was drawn from it.
        style: the style conditioner's output (bottleneck codes, commitment loss), or None.
    """

    conditions: dict[str, ConditionTensors]
    excerpt_span: Tensor | None = None
    style: StyleOutput | None = None


def _paired_source(wav: Tensor, style_wav: Tensor, has_style: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """One batch to draw excerpts from: ``style_wav`` rows where ``has_style``, ``wav`` rows elsewhere,
    zero-padded to the longer; returns ``(source [B, C, T'], lengths [B], paired [B])``."""
    b, c = wav.shape[:2]
    if style_wav.shape[:2] != (b, c):
        raise ValueError(f"style_wav must be [B={b}, C={c}, Ts] like wav; got {tuple(style_wav.shape)}")
    paired = torch.ones(b, dtype=torch.bool) if has_style is None else has_style.bool().cpu()
    t, ts = wav.shape[-1], style_wav.shape[-1]
    source = wav.new_zeros(b, c, max(t, ts))
    idx = paired.to(wav.device)
    source[~idx, :, :t] = wav[~idx]
    source[idx, :, :ts] = style_wav[idx].to(wav.dtype)
    lengths = torch.where(paired, torch.tensor(ts), torch.tensor(t))
    return source, lengths, paired


class StyleMusicGen(GenerationMixin, L.LightningModule):
    """A text- and audio-conditioned music LM trained end to end on codec tokens.

    The LM, the style conditioner and the text projection train jointly; the codec, the text encoder
    and the style feature extractor stay frozen. Training applies conditioning dropout (all 0.1, then
    text 0.4 and style 0.4), word dropout, random style excerpts with the anti-copy loss mask and
    quantizer dropout (docs/design.md §1.2).

    Args:
        codec: Audio tokenizer (frozen). Its ``num_codebooks`` / ``cardinality`` must match the LM's.
        lm: The decoder (its ``dim`` is linked to the conditioners' ``output_dim`` in the configs).
        text_conditioner: Text encoder + trainable projection, or None for a style-only model.
        style_conditioner: Style conditioner, or None for a text-only model.
        conditioning_dropout: Which conditions to drop per sample in training (classifier-free guidance).
        fuser: Where conditions go (default: prefix tokens, style then text, for the conditioners present).
        optim: Optimizer and learning-rate schedule.
        anti_copy_mask: Mask the LM loss on the target frames the style excerpt covers.
        sampling: This model's default guidance and sampling settings for ``generate()`` (default:
            ``SamplingSettings()``; a loaded audiocraft model takes its ``cfg_coef`` from its config).
    """

    def __init__(
        self,
        *,
        codec: AudioCodec,
        lm: MusicLM,
        text_conditioner: HFTextConditioner | None = None,
        style_conditioner: StyleConditioner | None = None,
        conditioning_dropout: ConditioningDropout | None = None,
        fuser: ConditionFuser | None = None,
        optim: OptimConfig | None = None,
        anti_copy_mask: bool = True,
        sampling: SamplingSettings | None = None,
    ) -> None:
        super().__init__()
        if text_conditioner is None and style_conditioner is None:
            raise ValueError("StyleMusicGen needs text_conditioner, style_conditioner or both")
        for name, cond in (("text_conditioner", text_conditioner), ("style_conditioner", style_conditioner)):
            if cond is not None and getattr(cond, "output_dim", lm.dim) != lm.dim:
                raise ValueError(f"{name}.output_dim={cond.output_dim} must equal lm.dim={lm.dim}")
        self.save_hyperparameters(
            ignore=["codec", "lm", "text_conditioner", "style_conditioner", "conditioning_dropout", "fuser"]
        )
        self.codec = codec
        self.lm = lm
        self.text_conditioner = text_conditioner
        self.style_conditioner = style_conditioner
        self.conditioning_dropout = conditioning_dropout or ConditioningDropout()
        present = tuple(
            n for n, c in (("style", style_conditioner), ("text", text_conditioner)) if c is not None
        )
        self.fuser = fuser or ConditionFuser(prefix=present)
        self.optim = optim or OptimConfig()
        self.anti_copy_mask = anti_copy_mask
        self.sampling = sampling or SamplingSettings()
        #: the ``{class_path, init_args}`` config this model was built from (set by the CLI / loaders)
        self.model_config: dict[str, Any] | None = None

    # ------------------------------------------------------------------ checks and setup
    def check_codec(self) -> None:
        """Raise if the codec's token layout differs from the LM's (done at setup: may load the codec)."""
        if self.codec.num_codebooks != self.lm.num_codebooks or self.codec.cardinality != self.lm.card:
            raise ValueError(
                f"codec has {self.codec.num_codebooks} codebooks x {self.codec.cardinality} but lm has "
                f"num_codebooks={self.lm.num_codebooks}, card={self.lm.card}: link them in the config"
            )

    def setup(self, stage: str) -> None:
        self.check_codec()

    def configure_model(self) -> None:
        """Load the frozen pretrained parts and switch on DDP codebook sync (called by the Trainer)."""
        for child in (self.text_conditioner, self.style_conditioner):
            if child is not None:
                child.configure_model()

    def configure_optimizers(self) -> Any:
        total = self.optim.total_steps
        if total is None:
            trainer = attached_trainer(self)
            estimated = float(trainer.estimated_stepping_batches) if trainer is not None else 1.0
            if not math.isfinite(estimated):
                raise ValueError(
                    "the learning-rate schedule needs a finite length: set trainer.max_steps, "
                    "trainer.max_epochs or model.optim.total_steps (the run is unbounded)"
                )
            total = int(estimated)
        return build_optimizer(self, self.optim, total_steps=max(1, total))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # DDP leaves buffers per rank: average the BatchNorm running statistics (the style conditioner's)
        # so every rank holds the same model; SyncBatchNorm (GPU-only) layers are left alone.
        average_batchnorm_stats_(self)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.model_config is not None:
            checkpoint["stylecond_config"] = self.model_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.model_config = checkpoint.get("stylecond_config", self.model_config)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.yaml`` + ``model.safetensors`` (no training state) into ``directory``."""
        if self.model_config is None:
            raise ValueError("this model has no model_config (build it through the CLI or from_pretrained)")
        return save_pretrained(self, directory, config=self.model_config)

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        *,
        revision: str | None = None,
        map_location: str | torch.device = "cpu",
        local_files_only: bool = False,
        format: str = "auto",
        **parts: Any,
    ) -> StyleMusicGen:
        """Load a model from a local directory or a hub id (in eval mode).

        Three sources: a stylecond export (``stylecond export`` / :meth:`save_pretrained`: ``config.yaml`` +
        ``model.safetensors``), an audiocraft release (``state_dict.bin`` + ``compression_state_dict.bin``:
        ``facebook/musicgen-style``, ``facebook/musicgen-small`` ...) and a transformers MusicGen
        (``MusicgenForConditionalGeneration``: ``config.json`` + weights). Hub ids download through
        huggingface_hub (``revision`` honoured; from the cache when offline). ``format`` forces one of
        ``"stylecond"``, ``"audiocraft"``, ``"transformers"``.

        Args:
            source: local directory or hub id.
            revision: hub revision (branch, tag or commit) of ``source``.
            map_location: device of the returned model.
            local_files_only: never contact the hub.
            format: ``"auto"`` or the kind of ``source``.
            parts: audiocraft only: ``t5=``, ``mert=``, ``encodec=`` (hub name or local path replacing the
                one the release names) and ``t5_revision=``, ``mert_revision=``, ``encodec_revision=``.
        """
        from stylecond.models.conversion import load_pretrained

        model = load_pretrained(
            source,
            revision=revision,
            map_location=map_location,
            local_files_only=local_files_only,
            format=format,  # type: ignore[arg-type]
            **parts,
        )
        if not isinstance(model, cls):
            raise TypeError(f"{source} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    # ------------------------------------------------------------------ conditioning
    def condition(
        self,
        *,
        texts: list[str | None] | None,
        wav: Tensor | None,
        sample_rate: int,
        style_wav: Tensor | None = None,
        has_style: Tensor | None = None,
        keep: dict[str, Tensor] | None = None,
        n_q: int | None = None,
        excerpt_length: float | None = None,
        excerpt_start: ExcerptStart | None = None,
        generator: torch.Generator | None = None,
    ) -> Conditioning:
        """Named conditions for a batch, the style excerpt span ``[B, 2]`` seconds within ``wav`` and the
        style conditioner's output.

        The style excerpt comes from ``style_wav [B, C, Ts]`` (paired conditioning) on the rows where
        ``has_style [B]`` is True (all rows when it is None), and from ``wav [B, C, T]`` (the target, in
        training) elsewhere; the style conditioner runs once on the whole batch either way (so DDP ranks
        make the same collective calls whatever their mix of rows). The span is ``(0, 0)`` on paired rows
        (nothing to mask), and None when no row draws its excerpt from ``wav``. ``keep`` holds
        per-condition ``[B]`` bool dropout masks. ``n_q``, ``excerpt_length``, ``excerpt_start`` and
        ``generator`` go to the style conditioner.
        """
        conditions: dict[str, ConditionTensors] = {}
        if self.text_conditioner is not None and texts is not None:
            rows = list(texts)
            if keep is not None:
                rows = [t if bool(k) else None for t, k in zip(rows, keep["text"].tolist())]
            conditions["text"] = self.text_conditioner(rows)
        sc = self.style_conditioner
        if sc is None or (wav is None and style_wav is None):
            return Conditioning(conditions)
        settings: dict[str, Any] = dict(
            sample_rate=sample_rate,
            keep=None if keep is None else keep["style"],
            n_q=n_q,
            excerpt_length=excerpt_length,
            excerpt_start=excerpt_start,
            generator=generator,
        )
        if wav is None or style_wav is None:
            source = wav if wav is not None else style_wav
            assert source is not None
            out = sc(source, **settings)
            span = out.excerpt_span if style_wav is None else None
            return Conditioning({**conditions, "style": out.condition}, span, out)
        source, lengths, paired = _paired_source(wav, style_wav, has_style)
        out = sc(source, lengths=lengths, **settings)
        span = None
        if not bool(paired.all()):
            assert out.excerpt_span is not None
            span = out.excerpt_span.masked_fill(paired.to(out.excerpt_span.device)[:, None], 0.0)
        return Conditioning({**conditions, "style": out.condition}, span, out)

    # ------------------------------------------------------------------ training
    def _codes(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        if batch.codes is not None:
            return batch.codes.long(), batch.codes_mask
        if batch.audio is None:
            raise ValueError("batch has neither codes nor audio")
        with torch.no_grad():
            codes = self.codec.encode(batch.audio)
        mask = None
        if batch.audio_mask is not None:
            hop = batch.audio.shape[-1] / codes.shape[-1]
            idx = (torch.arange(codes.shape[-1], device=codes.device) * hop).long()
            mask = batch.audio_mask[:, idx.clamp_max(batch.audio_mask.shape[-1] - 1)]
        return codes, mask

    def shared_step(self, batch: Any, *, stage: str) -> Tensor:
        codes, padding_mask = self._codes(batch)
        b, _, frames = codes.shape
        train = stage == "train"
        keep = self.conditioning_dropout(b, step=int(self.global_step), device=codes.device)
        paired = batch.style_audio is not None and batch.has_style is not None and bool(batch.has_style.any())
        conditioning = self.condition(
            texts=list(batch.texts),
            wav=batch.audio,
            sample_rate=batch.sample_rate,
            style_wav=batch.style_audio if paired else None,
            has_style=batch.has_style if paired else None,
            keep=keep if train else None,
        )
        fused = self.fuser(conditioning.conditions)
        out = self.lm(codes, prefix=fused.prefix, cross=fused.cross)
        loss_mask = None
        span = conditioning.excerpt_span
        if self.anti_copy_mask and span is not None:
            loss_mask = excerpt_frame_mask(span, frames, float(self.codec.frame_rate))
            if "style" in keep and train:
                loss_mask = loss_mask & keep["style"].to(loss_mask.device)[:, None]
        result = self.lm.compute_loss(out, codes, padding_mask=padding_mask, loss_mask=loss_mask)
        loss = result.loss
        style = conditioning.style
        sc = self.style_conditioner
        if train and style is not None and sc is not None:
            if sc.rvq.commitment_weight > 0:  # already weighted by the bottleneck
                loss = loss + style.rvq.commit_loss
                self.log("train/commit_loss", style.rvq.commit_loss.detach(), batch_size=b)
            self.log_dict(sc.health_metrics(style), on_step=True, on_epoch=False, batch_size=b)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=b, sync_dist=not train)
        for k, value in enumerate(result.per_codebook):
            self.log(f"{stage}/ce_q{k}", value, batch_size=b, sync_dist=not train)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self.shared_step(batch, stage="train")

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self.shared_step(batch, stage="val")

    def test_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self.shared_step(batch, stage="test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """Generate, per sample, from its text and an excerpt of its audio, as long as the segment.

        Returns ``{"keys": [B], "wav": [B, C, T]}`` at ``codec.sample_rate`` (write them with a
        ``BasePredictionWriter`` callback, or read ``trainer.predict(...)``'s return value).
        """
        if batch.audio is None:
            raise ValueError("predict needs audio in the batch (decode_audio=true) for the style excerpt")
        seconds = batch.audio.shape[-1] / float(batch.sample_rate)
        wav = self.generate(
            texts=list(batch.texts) if self.text_conditioner is not None else None,
            style_audio=batch.audio if self.style_conditioner is not None else None,
            style_sample_rate=batch.sample_rate,
            duration=seconds,
        )
        return {"keys": list(batch.keys), "wav": wav}
