"""``GenerationPreview``: listen to (and look at) what the model generates at each validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from stylecond.audio import resample, save_audio
from stylecond.generation.settings import SamplingSettings
from stylecond.mel import MelSpectrogram
from stylecond.utils.distributed import is_sharded

#: preview name -> (use the texts, use the reference audio)
CONDITIONS: dict[str, tuple[bool, bool]] = {
    "style_only": (False, True),
    "text_only": (True, False),
    "text_style": (True, True),
}


def spectrogram_image(wav: Tensor, sample_rate: int, *, n_mels: int = 80, top_db: float = 80.0) -> np.ndarray:
    """``wav [C, T]`` or ``[T]`` -> log-mel picture ``[n_mels, F, 3]`` uint8 (low frequencies at the bottom)."""
    from matplotlib import colormaps

    mono = wav.float().reshape(-1, wav.shape[-1]).mean(0)[None]  # [1, T]
    mel = MelSpectrogram(sample_rate=sample_rate, n_mels=n_mels, log=False)(mono)[0]  # [n_mels, F]
    db = 10.0 * torch.log10(mel.clamp_min(1e-10))
    db = (db - db.max()).clamp_min(-top_db) / top_db + 1.0  # [0, 1]
    rgb = colormaps["magma"](db.flip(0).numpy())[..., :3]
    return (rgb * 255).round().astype(np.uint8)


class GenerationPreview(L.Callback):
    """At validation end (global rank 0), generate from the first validation batch and log the results.

    Three previews per example: ``style_only`` (the example's audio as reference), ``text_only`` (its
    caption) and ``text_style`` (both, double CFG), plus the ``reference`` audio itself. Each is logged
    as audio and a log-mel spectrogram image to every TensorBoard logger (``add_audio`` / ``add_image``,
    tag ``preview/<name>_<i>``), and written as ``<name>_<i>.wav`` + ``.png`` into
    ``<log_dir>/previews/step_<global_step>/`` whatever the logger. Conditions the model lacks are
    skipped. Skipped during the sanity check and ``fast_dev_run``; random streams of training are
    preserved. Under FSDP every rank generates (rank 0's examples) and rank 0 logs. The model needs ``generate(texts=, style_audio=, style_sample_rate=, duration=, ...)``
    and ``codec`` (as :class:`~stylecond.models.style_musicgen.StyleMusicGen` has).

    Args:
        every_n_val: preview at every n-th validation run (1 = every one).
        seconds: seconds of audio to generate per preview.
        num_examples: examples taken from the first validation batch.
        sampling: guidance and sampling (``cfg_coef_beta`` applies to ``text_style``; the single-condition
            previews use plain CFG).
        seed: sampling seed (the same every time, so previews are comparable across steps).
    """

    def __init__(
        self,
        *,
        every_n_val: int = 1,
        seconds: float = 2.0,
        num_examples: int = 2,
        sampling: SamplingSettings | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if every_n_val < 1:
            raise ValueError(f"every_n_val must be >= 1, got {every_n_val}")
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        if num_examples < 1:
            raise ValueError(f"num_examples must be >= 1, got {num_examples}")
        self.every_n_val = every_n_val
        self.seconds = seconds
        self.num_examples = num_examples
        self.sampling = sampling or SamplingSettings()
        self.seed = seed
        self.num_validations = 0
        self._examples: dict[str, Any] | None = None

    # ---------------------------------------------------------------- collecting the examples
    def _active(self, trainer: L.Trainer) -> bool:
        return not trainer.sanity_checking and not getattr(trainer, "fast_dev_run", False)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._examples = None

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._examples is not None or not self._active(trainer) or not trainer.is_global_zero:
            return
        n = self.num_examples
        audio, codes = getattr(batch, "audio", None), getattr(batch, "codes", None)
        self._examples = {
            "texts": list(getattr(batch, "texts", []) or [])[:n] or None,
            "audio": None if audio is None else audio[:n].detach().float().cpu(),
            "codes": None if codes is None else codes[:n].detach().cpu(),
            "sample_rate": int(getattr(batch, "sample_rate", 0) or 0),
        }

    # ---------------------------------------------------------------- generating and logging
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not self._active(trainer):
            return
        self.num_validations += 1
        if self.num_validations % self.every_n_val:
            return
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks
        if not callable(getattr(pl_module, "generate", None)):
            rank_zero_warn(f"GenerationPreview: {type(pl_module).__name__} has no generate(); no previews")
            return
        examples = self._examples
        if is_sharded(pl_module):
            # every forward of a sharded model gathers its weights from every rank: all ranks generate
            # (rank 0's examples), in lockstep; rank 0 logs
            examples = trainer.strategy.broadcast(examples, src=0)
        elif not trainer.is_global_zero:
            return
        if examples is None:
            return
        clips = self._generate(pl_module, examples)  # seeded locally: training's random streams are untouched
        if not trainer.is_global_zero:
            return
        out_dir = None if log_dir is None else Path(log_dir) / "previews" / f"step_{trainer.global_step:07d}"
        self._log(trainer, clips, int(pl_module.codec.sample_rate), out_dir)

    def _reference(self, pl_module: Any, examples: dict[str, Any]) -> tuple[Tensor | None, int]:
        if examples["audio"] is not None:
            return examples["audio"], examples["sample_rate"] or int(pl_module.codec.sample_rate)
        if examples["codes"] is not None:  # pre-tokenized data without audio: decode the tokens
            with torch.no_grad():
                wav = pl_module.codec.decode(examples["codes"].to(pl_module.device).long())
            return wav.float().cpu(), int(pl_module.codec.sample_rate)
        return None, 0

    def _generate(self, pl_module: Any, examples: dict[str, Any]) -> dict[str, Tensor]:
        """``{name_i: wav [C, T]}`` for the reference and every condition the model supports."""
        reference, ref_sr = self._reference(pl_module, examples)
        texts = examples["texts"]
        has_text = getattr(pl_module, "text_conditioner", None) is not None and texts is not None
        has_style = getattr(pl_module, "style_conditioner", None) is not None and reference is not None
        clips: dict[str, Tensor] = {}
        if reference is not None:
            for i, wav in enumerate(resample(reference, ref_sr, int(pl_module.codec.sample_rate))):
                clips[f"reference_{i}"] = wav
        for name, (use_text, use_style) in CONDITIONS.items():
            if (use_text and not has_text) or (use_style and not has_style):
                continue
            try:
                wavs = pl_module.generate(
                    texts=texts if use_text else None,
                    style_audio=reference.to(pl_module.device)
                    if use_style and reference is not None
                    else None,
                    style_sample_rate=ref_sr if use_style else None,
                    duration=self.seconds,
                    sampling=self.sampling
                    if use_text and use_style
                    else self.sampling.replace(cfg_coef_beta=None),
                    seed=self.seed,
                )
            except ValueError as err:  # e.g. validation clips shorter than the style excerpt
                rank_zero_warn(f"GenerationPreview: {name} preview failed: {err}")
                continue
            for i, wav in enumerate(wavs.detach().float().cpu()):
                clips[f"{name}_{i}"] = wav
        return clips

    def _log(
        self, trainer: L.Trainer, clips: dict[str, Tensor], sample_rate: int, out_dir: Path | None
    ) -> None:
        from matplotlib.image import imsave

        step = int(trainer.global_step)
        boards = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        for name, wav in clips.items():
            image = spectrogram_image(wav, sample_rate)
            mono = wav.mean(0).clamp(-1.0, 1.0)
            for board in boards:
                board.add_audio(f"preview/{name}", mono[None], step, sample_rate=sample_rate)
                board.add_image(f"preview/{name}", image, step, dataformats="HWC")
            if out_dir is not None:
                save_audio(out_dir / f"{name}.wav", wav.clamp(-1.0, 1.0), sample_rate)
                imsave(out_dir / f"{name}.png", image)
