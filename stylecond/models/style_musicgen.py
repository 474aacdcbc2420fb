"""``StyleMusicGen``: MusicLM + codec + text and style conditioners, trained jointly (MusicGen-Style)."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from stylecond.codecs.base import AudioCodec
from stylecond.conditioners.dropout import ConditioningDropout
from stylecond.conditioners.fuser import ConditionFuser
from stylecond.conditioners.style import StyleConditioner, excerpt_frame_mask
from stylecond.conditioners.text import HFTextConditioner
from stylecond.generation.settings import SamplingSettings
from stylecond.inversion.fingerprint import weights_digest
from stylecond.lm.music_lm import MusicLM
from stylecond.models.conditioning import ConditioningMixin
from stylecond.models.finetuning import (
    FineTuning,
    apply_finetuning,
    frozen_parts,
    load_adapters,
    merged_state_dict,
    save_adapters,
)
from stylecond.models.generation import GenerationMixin
from stylecond.models.pretrained import load_initial_weights, save_pretrained
from stylecond.utils.attached import attached_trainer
from stylecond.utils.distributed import average_batchnorm_stats_
from stylecond.utils.ema_state import EMA_STATE_KEY, split_ema_state
from stylecond.utils.optim import OptimConfig, build_optimizer


class StyleMusicGen(ConditioningMixin, GenerationMixin, L.LightningModule):
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
        init_from: A stylecond export directory (``stylecond convert`` / ``export``) whose weights
            initialise this model in ``configure_model`` (fine-tuning; a resumed checkpoint overrides them).
        init_new: Top-level parts (e.g. ``["style_conditioner"]``) that keep their fresh initialisation
            instead of taking ``init_from``'s weights (a style conditioner added to a text MusicGen).
        finetune: What trains: everything, LoRA adapters on the LM, or the style conditioner only.
        window_seconds: ``generate()``'s sliding window: the length of the segments the model was trained
            on. None takes the data module's ``segment_seconds`` when fitting (exports carry it); 30 s
            (MusicGen's segment) for a model that never learned it.
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
        init_from: str | None = None,
        init_new: Sequence[str] = (),
        finetune: FineTuning | None = None,
        window_seconds: float | None = None,
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
        self.init_from, self.init_new = init_from, tuple(init_new)
        self.finetune = finetune
        if window_seconds is not None and not window_seconds > 0:
            raise ValueError(f"window_seconds must be > 0 or None; got {window_seconds}")
        self.window_seconds = window_seconds
        self._initialised = False
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
        data = getattr(attached_trainer(self), "datamodule", None)
        segment = getattr(data, "segment_seconds", None)
        if segment is not None and self.window_seconds is None:  # the generation window exports carry
            self.window_seconds = float(segment)
            if self.model_config is not None:
                self.model_config.setdefault("init_args", {})["window_seconds"] = float(segment)
        sc = self.style_conditioner
        if sc is not None and self.anti_copy_mask and segment is not None and segment <= sc.excerpt_length:
            raise ValueError(
                f"data segment_seconds={segment} <= style_conditioner.excerpt_length={sc.excerpt_length}: "
                "the anti-copy mask would hide every target frame at validation; use longer segments"
            )

    def configure_model(self) -> None:
        """Load every frozen pretrained part (codec, text encoder, style feature extractor) now.

        One rule for all of them: they exist in the module tree before anything looks at it: EMA's copy
        of the model (``EMAWeightAveraging`` calls this first), FSDP's wrapping and checkpointing.
        Idempotent (the Trainer and the EMA callback both call it).
        """
        self.codec.materialize()
        for child in (self.text_conditioner, self.style_conditioner):
            if child is not None:
                child.configure_model()
        if self.init_from is not None and not self._initialised:
            load_initial_weights(self, self.init_from, new_parts=self.init_new)
        self._initialised = True
        if self.finetune is not None:
            apply_finetuning(self, self.finetune)
            for part in frozen_parts(self, self.finetune):
                part.eval()

    def train(self, mode: bool = True) -> StyleMusicGen:
        super().train(mode)
        for part in frozen_parts(self, self.finetune):  # fine-tuning: frozen parts do not drift
            part.eval()
        return self

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
        ema = split_ema_state(checkpoint.get("state_dict", {}))  # averaged weights: for the EMA callback
        if ema:
            checkpoint[EMA_STATE_KEY] = ema

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.yaml`` + ``model.safetensors`` (no training state) into ``directory``.

        A fine-tuned model is written as a plain one: LoRA adapters merged into the LM's weights, and no
        ``init_from`` / ``init_new`` / ``finetune`` in the config (the export stands alone).
        """
        if self.model_config is None:
            raise ValueError("this model has no model_config (build it through the CLI or from_pretrained)")
        config = copy.deepcopy(self.model_config)
        for key in ("init_from", "init_new", "finetune"):
            config.get("init_args", {}).pop(key, None)
        return save_pretrained(self, directory, config=config, state=merged_state_dict(self))

    def save_adapters(self, path: str | Path) -> Path:
        """Write the LoRA adapters alone (safetensors, with their settings and the base weights' digest)."""
        if self.finetune is None or self.finetune.mode != "lora":
            raise ValueError("save_adapters needs finetune.mode 'lora'")
        return save_adapters(self, path, ft=self.finetune, base_digest=weights_digest(self))

    def load_adapters(self, path: str | Path) -> StyleMusicGen:
        """Add LoRA adapters written by :meth:`save_adapters` to this (base) model; returns it."""
        self.finetune = load_adapters(self, path, base_digest=weights_digest(self))
        return self.train(self.training)  # the new adapter modules take the model's mode

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        *,
        revision: str | None = None,
        map_location: str | torch.device = "cpu",
        local_files_only: bool = False,
        format: str = "auto",
        allow_class_paths: Sequence[str] = (),
        trust_remote_code: bool = False,
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
            allow_class_paths: class paths beyond stylecond's own that an export's config may name (an
                untrusted config naming any other class is refused: loading runs no code you did not choose).
            trust_remote_code: let parts whose config asks for repository code run it (off: such flags in
                the config are turned off, with a warning).
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
            allow_class_paths=allow_class_paths,
            trust_remote_code=trust_remote_code,
            **parts,
        )
        if not isinstance(model, cls):
            raise TypeError(f"{source} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

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
