"""Turning a batch into the LM's conditions: texts and style excerpts (paired or from the target)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from stylecond.conditioners.style import ExcerptStart, StyleOutput
from stylecond.conditioners.types import ConditionTensors


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


class ConditioningMixin:
    """``condition()`` for a model with ``text_conditioner`` and ``style_conditioner`` (either may be None)."""

    text_conditioner: Any
    style_conditioner: Any

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
