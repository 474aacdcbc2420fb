"""User-facing generation for :class:`~stylecond.models.style_musicgen.StyleMusicGen`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from stylecond.conditioners.style import ExcerptStart
from stylecond.conditioners.types import ConditionTensors
from stylecond.generation.generate import generate_codes, generate_long
from stylecond.generation.sampler import DoubleCFGSampler
from stylecond.generation.settings import SamplingSettings


def _as_batch(style_audio: Tensor | Sequence[Tensor]) -> Tensor:
    """``[C, T]``, ``[B, C, T]`` or a list of ``[C, T]`` (cropped to the shortest) -> ``[B, C, T]``."""
    if isinstance(style_audio, Tensor):
        if style_audio.dim() == 2:
            return style_audio[None]
        if style_audio.dim() == 3:
            return style_audio
        raise ValueError(f"style_audio must be [C, T] or [B, C, T]; got shape {tuple(style_audio.shape)}")
    items = list(style_audio)
    if not items:
        raise ValueError("style_audio is an empty list")
    length = min(int(x.shape[-1]) for x in items)
    return torch.stack([x[..., :length] for x in items])


class GenerationMixin:
    """``generate()`` for a model with ``codec``, ``lm``, ``fuser``, ``condition()`` and conditioners."""

    codec: Any
    lm: Any
    fuser: Any
    text_conditioner: Any
    style_conditioner: Any
    condition: Callable[..., Any]

    @torch.no_grad()
    def generate(
        self,
        *,
        texts: Sequence[str | None] | None = None,
        style_audio: Tensor | Sequence[Tensor] | None = None,
        style_sample_rate: int | None = None,
        duration: float = 10.0,
        eval_q: int | None = None,
        excerpt_length: float | None = None,
        excerpt_start: ExcerptStart | None = None,
        sampling: SamplingSettings | None = None,
        seed: int | None = None,
        window_seconds: float = 30.0,
        stride_seconds: float = 18.0,
        progress: Callable[[int, int], None] | None = None,
        condition_overrides: Mapping[str, ConditionTensors] | None = None,
    ) -> Tensor:
        """Generate ``wav [B, C, T]`` at ``codec.sample_rate`` from text and/or reference audio.

        Every setting travels as an argument down to the block that uses it: ``eval_q`` to the RVQ
        bottleneck, ``excerpt_length`` / ``excerpt_start`` to the style conditioner's excerpt, ``sampling``
        to the sampler, and ``seed`` into local random generators (the global RNG is never seeded).

        Args:
            texts: B prompts (None entries: no text for that row).
            style_audio: reference audio ``[C, T]``, ``[B, C, T]`` or a list of ``[C, T]``.
            style_sample_rate: rate of ``style_audio`` (default: the codec's).
            duration: seconds to generate (> 0); beyond ``window_seconds`` a sliding window re-draws the
                style excerpt for each window.
            eval_q: style codebooks used (1..num_codebooks; default: the conditioner's ``eval_q``): fewer =
                looser adherence to the audio.
            excerpt_length: seconds of reference audio the style is taken from (default: the conditioner's).
            excerpt_start: where the excerpt starts: "middle", "random" or seconds (default: the conditioner's).
            sampling: guidance and sampling settings (default: the model's ``sampling``).
            seed: seed of the sampling and excerpt draws (None: the global RNG, so ``torch.manual_seed``
                reproduces a call).
            window_seconds / stride_seconds: sliding window for long durations.
            progress: called as ``progress(done, total)`` after each decoding step.
            condition_overrides: named conditions used as given (e.g. ``{"text": ...}`` holding textual
                inversion vectors ``[B, P, lm.dim]``); they replace what texts/style_audio would give.
        """
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration > 0:
            raise ValueError(f"duration must be a positive number of seconds; got {duration!r}")
        if texts is not None and self.text_conditioner is None:
            raise ValueError("texts were given but this model has no text_conditioner")
        if (style_audio is not None or eval_q is not None) and self.style_conditioner is None:
            given = "style_audio" if style_audio is not None else "eval_q"
            raise ValueError(f"{given} was given but this model has no style_conditioner")
        if eval_q is not None:
            self.style_conditioner.rvq.check_n_q(eval_q, "eval_q")
        wav = None if style_audio is None else _as_batch(style_audio)
        overrides = dict(condition_overrides or {})
        if texts is None and wav is None and not overrides:
            raise ValueError("give texts, style_audio or both")
        if texts is not None and wav is not None and len(texts) != wav.shape[0]:
            raise ValueError(f"texts has {len(texts)} rows but style_audio has {wav.shape[0]}")
        sr = int(style_sample_rate or self.codec.sample_rate)
        device = next(self.lm.parameters()).device
        if wav is not None:
            wav = wav.to(device=device, dtype=torch.float32)
        sampler = DoubleCFGSampler(sampling or getattr(self, "sampling", None))
        generator: torch.Generator | None = None
        excerpt_generator: torch.Generator | None = None
        if seed is not None:
            generator = torch.Generator(device=device).manual_seed(seed)
            excerpt_generator = torch.Generator().manual_seed(seed)
        frame_rate = float(self.codec.frame_rate)
        num_frames = max(1, math.ceil(duration * frame_rate))
        window = max(1, round(window_seconds * frame_rate))
        text_rows = None if texts is None else list(texts)

        def conditions_for(window_index: int) -> Mapping[str, ConditionTensors]:
            conditioning = self.condition(
                texts=text_rows,
                wav=None,
                style_wav=wav,
                sample_rate=sr,
                n_q=eval_q,
                excerpt_length=excerpt_length,
                # re-draw the excerpt for each new window
                excerpt_start="random" if window_index > 0 else excerpt_start,
                generator=excerpt_generator,
            )
            conditions = dict(conditioning.conditions)
            conditions.update(overrides)
            return conditions

        was_training = self.lm.training
        self.eval()  # type: ignore[attr-defined]
        try:
            if num_frames <= window:
                codes = generate_codes(
                    self.lm,
                    conditions=conditions_for(0),
                    sampler=sampler,
                    num_frames=num_frames,
                    fuser=self.fuser,
                    generator=generator,
                    progress=progress,
                )
            else:
                codes = generate_long(
                    self.lm,
                    conditions_fn=conditions_for,
                    sampler=sampler,
                    num_frames=num_frames,
                    window_frames=window,
                    stride_frames=max(1, round(stride_seconds * frame_rate)),
                    fuser=self.fuser,
                    generator=generator,
                    progress=progress,
                )
            return self.codec.decode(codes)
        finally:
            self.train(was_training)  # type: ignore[attr-defined]
