"""``StyleMusicGen``: MusicLM + codec + text and style conditioners, trained jointly (MusicGen-Style)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from stylecond.codecs.base import AudioCodec
from stylecond.conditioners.dropout import ConditioningDropout
from stylecond.conditioners.fuser import ConditionFuser, pad_condition
from stylecond.conditioners.style import StyleConditioner, excerpt_frame_mask
from stylecond.conditioners.text import HFTextConditioner
from stylecond.conditioners.types import ConditionTensors
from stylecond.lm.music_lm import MusicLM
from stylecond.models.generation import GenerationMixin
from stylecond.models.pretrained import from_pretrained, save_pretrained
from stylecond.training.distributed import average_batchnorm_stats_
from stylecond.training.optim import OptimConfig, build_optimizer


class StyleMusicGen(GenerationMixin, L.LightningModule):
    """A text- and audio-conditioned music LM trained end to end on codec tokens.

    The LM, the style conditioner and the text projection train jointly; the codec, the text encoder
    and the style feature extractor stay frozen. Training applies conditioning dropout (all 0.1, then
    text 0.4 and style 0.4), word dropout, random style excerpts with the anti-copy loss mask and
    quantizer dropout (DESIGN.md §1).

    Args:
        codec: Audio tokenizer (frozen). Its ``num_codebooks`` / ``cardinality`` must match the LM's.
        lm: The decoder (its ``dim`` is linked to the conditioners' ``output_dim`` in the configs).
        text_conditioner: Text encoder + trainable projection, or None for a style-only model.
        style_conditioner: Style conditioner, or None for a text-only model.
        conditioning_dropout: Which conditions to drop per sample in training (classifier-free guidance).
        fuser: Where conditions go (default: prefix tokens, style then text, for the conditioners present).
        optim: Optimizer and learning-rate schedule.
        anti_copy_mask: Mask the LM loss on the target frames the style excerpt covers.
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
    ) -> None:
        super().__init__()
        if text_conditioner is None and style_conditioner is None:
            raise ValueError("StyleMusicGen needs text_conditioner, style_conditioner or both")
        for name, cond in (("text_conditioner", text_conditioner), ("style_conditioner", style_conditioner)):
            if cond is not None and getattr(cond, "output_dim", lm.dim) != lm.dim:
                raise ValueError(f"{name}.output_dim={cond.output_dim} must equal lm.dim={lm.dim}")
        self.save_hyperparameters(ignore=["codec", "lm", "text_conditioner", "style_conditioner"])
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
            estimated = float(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1.0
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
        cls, directory: str | Path, *, map_location: str | torch.device = "cpu"
    ) -> StyleMusicGen:
        """Load a directory written by :meth:`save_pretrained` / ``stylecond export``."""
        model = from_pretrained(directory, map_location=map_location)
        if not isinstance(model, cls):
            raise TypeError(f"{directory} holds a {type(model).__name__}, not a {cls.__name__}")
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
    ) -> tuple[dict[str, ConditionTensors], Tensor | None]:
        """Named conditions for a batch and the style excerpt span ``[B, 2]`` seconds within ``wav``.

        The style excerpt comes from ``style_wav [B, C, Ts]`` (paired conditioning) on the rows where
        ``has_style [B]`` is True (all rows when it is None), and from ``wav [B, C, T]`` (the target, in
        training) elsewhere. The span is ``(0, 0)`` on paired rows (nothing to mask), and None when no
        row draws its excerpt from ``wav``. ``keep`` holds per-condition ``[B]`` bool dropout masks.
        """
        conditions: dict[str, ConditionTensors] = {}
        span: Tensor | None = None
        if self.text_conditioner is not None and texts is not None:
            rows = list(texts)
            if keep is not None:
                rows = [t if bool(k) else None for t, k in zip(rows, keep["text"].tolist())]
            conditions["text"] = self.text_conditioner(rows)
        sc = self.style_conditioner
        if sc is None or (wav is None and style_wav is None):
            return conditions, span
        keep_style = None if keep is None else keep["style"]
        if style_wav is None or wav is None:
            source = wav if wav is not None else style_wav
            assert source is not None
            out = sc(source, sample_rate=sample_rate, keep=keep_style)
            conditions["style"] = out.condition
            return conditions, out.excerpt_span if style_wav is None else None
        paired = (
            torch.ones(wav.shape[0], dtype=torch.bool, device=wav.device) if has_style is None else has_style
        )
        parts: list[tuple[Tensor, Any]] = []
        for rows_mask, ref in ((paired, style_wav), (~paired, None)):
            idx = rows_mask.nonzero().flatten()
            if idx.numel():
                sub_keep = None if keep_style is None else keep_style[idx.to(keep_style.device)]
                sub_ref = None if ref is None else ref[idx]
                parts.append((idx, sc(wav[idx], sample_rate=sample_rate, style_wav=sub_ref, keep=sub_keep)))
        length = max(int(out.condition.embeddings.shape[1]) for _, out in parts)
        first = parts[0][1].condition
        emb = first.embeddings.new_zeros(wav.shape[0], length, first.embeddings.shape[-1])
        mask = first.mask.new_zeros(wav.shape[0], length)
        full_span = torch.zeros(wav.shape[0], 2, device=wav.device)
        for idx, out in parts:
            cond = pad_condition(out.condition, length)
            emb[idx], mask[idx] = cond.embeddings, cond.mask
            if out.excerpt_span is not None:
                full_span[idx] = out.excerpt_span.to(full_span.device)
                span = full_span
        conditions["style"] = ConditionTensors(emb, mask)
        return conditions, span

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
        keep = self.conditioning_dropout(b, step=int(self.global_step), device=codes.device)
        paired = batch.style_audio is not None and batch.has_style is not None and bool(batch.has_style.any())
        conditions, span = self.condition(
            texts=list(batch.texts),
            wav=batch.audio,
            sample_rate=batch.sample_rate,
            style_wav=batch.style_audio if paired else None,
            has_style=batch.has_style if paired else None,
            keep=keep if stage == "train" else None,
        )
        fused = self.fuser(conditions)
        out = self.lm(codes, prefix=fused.prefix, cross=fused.cross)
        loss_mask = None
        if self.anti_copy_mask and span is not None:
            loss_mask = excerpt_frame_mask(span, frames, float(self.codec.frame_rate))
            if "style" in keep and stage == "train":
                loss_mask = loss_mask & keep["style"].to(loss_mask.device)[:, None]
        result = self.lm.compute_loss(out, codes, padding_mask=padding_mask, loss_mask=loss_mask)
        self.log(f"{stage}/loss", result.loss, prog_bar=True, batch_size=b, sync_dist=stage != "train")
        for k, value in enumerate(result.per_codebook):
            self.log(f"{stage}/ce_q{k}", value, batch_size=b, sync_dist=stage != "train")
        return result.loss

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
