"""User-facing generation for :class:`~stylecond.models.style_musicgen.StyleMusicGen`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from stylecond.conditioners.style import ExcerptStart
from stylecond.conditioners.types import ConditionTensors
from stylecond.generation.generate import generate_codes, generate_long, stream_long_codes
from stylecond.generation.sampler import DoubleCFGSampler
from stylecond.generation.settings import SamplingSettings
from stylecond.models.streaming import ChunkedDecoder


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


DEFAULT_WINDOW_SECONDS = 30.0  # MusicGen's training segment: the window of models that do not record theirs
STRIDE_RATIO = 0.6  # each later window adds 60 % of a window (18 s of 30 s, as audiocraft's extend_stride)


@dataclass
class _Plan:
    """What one generate call decodes: conditions per window, sampling, lengths."""

    conditions_for: Callable[[int], Mapping[str, ConditionTensors]]
    sampler: DoubleCFGSampler
    generator: torch.Generator | None
    num_frames: int
    window: int
    stride: int


class GenerationMixin:
    """``generate()`` / ``generate_stream()`` for a model with ``codec``, ``lm``, ``fuser``, ``condition()``,
    conditioners and ``window_seconds`` (its training segment length, None if unknown)."""

    codec: Any
    lm: Any
    fuser: Any
    text_conditioner: Any
    style_conditioner: Any
    window_seconds: float | None
    condition: Callable[..., Any]

    def _plan(
        self,
        *,
        texts: Sequence[str | None] | None,
        style_audio: Tensor | Sequence[Tensor] | None,
        style_sample_rate: int | None,
        duration: float,
        eval_q: int | None,
        excerpt_length: float | None,
        excerpt_start: ExcerptStart | None,
        sampling: SamplingSettings | None,
        seed: int | None,
        window_seconds: float | None,
        stride_seconds: float | None,
        redraw_style: bool,
        condition_overrides: Mapping[str, ConditionTensors] | None,
    ) -> _Plan:
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
        window_s = float(window_seconds or self.window_seconds or DEFAULT_WINDOW_SECONDS)
        stride_s = float(stride_seconds or STRIDE_RATIO * window_s)
        if not 0 < stride_s <= window_s:
            raise ValueError(f"stride_seconds must be in (0, window_seconds={window_s}]; got {stride_s}")
        sr = int(style_sample_rate or self.codec.sample_rate)
        device = next(self.lm.parameters()).device
        if wav is not None:
            wav = wav.to(device=device, dtype=torch.float32)
        generator = excerpt_generator = None
        if seed is not None:
            generator = torch.Generator(device=device).manual_seed(seed)
            excerpt_generator = torch.Generator().manual_seed(seed)
        text_rows = None if texts is None else list(texts)
        cache: dict[int, Mapping[str, ConditionTensors]] = {}

        def conditions_for(window_index: int) -> Mapping[str, ConditionTensors]:
            index = window_index if redraw_style else 0  # the same style tokens in every window by default
            if index not in cache:
                conditioning = self.condition(
                    texts=text_rows, wav=None, style_wav=wav, sample_rate=sr, n_q=eval_q,
                    excerpt_length=excerpt_length, excerpt_start="random" if index > 0 else excerpt_start,
                    generator=excerpt_generator,
                )  # fmt: skip
                cache[index] = {**conditioning.conditions, **overrides}
            return cache[index]

        frame_rate = float(self.codec.frame_rate)
        window = max(1, round(window_s * frame_rate))
        return _Plan(conditions_for=conditions_for, sampler=DoubleCFGSampler(sampling or getattr(self, "sampling", None)),
                     generator=generator, num_frames=max(1, math.ceil(duration * frame_rate)), window=window,
                     stride=min(window, max(1, round(stride_s * frame_rate))))  # fmt: skip

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
        window_seconds: float | None = None,
        stride_seconds: float | None = None,
        redraw_style: bool = False,
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
            duration: seconds to generate (> 0). Beyond one window a sliding window continues from the
                previous window's last ``window - stride`` seconds of tokens, with the same style tokens.
            eval_q: style codebooks used (1..num_codebooks; default: the conditioner's ``eval_q``): fewer =
                looser adherence to the audio.
            excerpt_length: seconds of reference audio the style is taken from (default: the conditioner's).
            excerpt_start: where the excerpt starts: "middle", "random" or seconds (default: the conditioner's).
            sampling: guidance and sampling settings (default: the model's ``sampling``).
            seed: seed of the sampling and excerpt draws (None: the global RNG, so ``torch.manual_seed``
                reproduces a call).
            window_seconds: window length (default: the model's ``window_seconds``, its training segment,
                30 s when the model does not record it).
            stride_seconds: new seconds per later window (default: 60 % of the window).
            redraw_style: draw a new random excerpt of the reference for each later window instead of
                keeping the first window's style tokens.
            progress: called as ``progress(done, total)`` after each decoding step (each window when long).
            condition_overrides: named conditions used as given (e.g. ``{"text": ...}`` holding textual
                inversion vectors ``[B, P, lm.dim]``); they replace what texts/style_audio would give.
        """
        plan = self._plan(texts=texts, style_audio=style_audio, style_sample_rate=style_sample_rate, duration=duration,
                          eval_q=eval_q, excerpt_length=excerpt_length, excerpt_start=excerpt_start, sampling=sampling,
                          seed=seed, window_seconds=window_seconds, stride_seconds=stride_seconds,
                          redraw_style=redraw_style, condition_overrides=condition_overrides)  # fmt: skip
        was_training = self.lm.training
        self.eval()  # type: ignore[attr-defined]
        try:
            common = dict(sampler=plan.sampler, num_frames=plan.num_frames, fuser=self.fuser, generator=plan.generator,
                          progress=progress)  # fmt: skip
            if plan.num_frames <= plan.window:
                codes = generate_codes(self.lm, conditions=plan.conditions_for(0), **common)
            else:
                codes = generate_long(self.lm, conditions_fn=plan.conditions_for, window_frames=plan.window,
                                      stride_frames=plan.stride, **common)  # fmt: skip
            return self.codec.decode(codes)
        finally:
            self.train(was_training)  # type: ignore[attr-defined]

    @torch.no_grad()
    def generate_stream(
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
        window_seconds: float | None = None,
        stride_seconds: float | None = None,
        redraw_style: bool = False,
        chunk_seconds: float = 1.0,
        condition_overrides: Mapping[str, ConditionTensors] | None = None,
    ) -> Iterator[Tensor]:
        """:meth:`generate`, yielding ``wav [B, C, t]`` pieces as the tokens are decoded (their concatenation
        is the piece). Each ``chunk_seconds`` of new tokens is decoded with some context before it, and
        the joins are crossfaded (:class:`~stylecond.models.streaming.ChunkedDecoder`). Same arguments
        and the same tokens as :meth:`generate` for the same ``seed``."""
        if not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be > 0; got {chunk_seconds}")
        plan = self._plan(texts=texts, style_audio=style_audio, style_sample_rate=style_sample_rate, duration=duration,
                          eval_q=eval_q, excerpt_length=excerpt_length, excerpt_start=excerpt_start, sampling=sampling,
                          seed=seed, window_seconds=window_seconds, stride_seconds=stride_seconds,
                          redraw_style=redraw_style, condition_overrides=condition_overrides)  # fmt: skip
        frame_rate = float(self.codec.frame_rate)
        decoder = ChunkedDecoder.for_codec(self.codec)
        was_training = self.lm.training
        self.eval()  # type: ignore[attr-defined]
        try:
            chunks = stream_long_codes(self.lm, conditions_fn=plan.conditions_for, sampler=plan.sampler,
                                       num_frames=plan.num_frames, window_frames=plan.window, stride_frames=plan.stride,
                                       chunk_frames=max(1, round(chunk_seconds * frame_rate)), fuser=self.fuser,
                                       generator=plan.generator)  # fmt: skip
            for codes in chunks:
                wav = decoder.push(codes)
                if wav.shape[-1]:
                    yield wav
            yield decoder.flush()
        finally:
            self.train(was_training)  # type: ignore[attr-defined]
