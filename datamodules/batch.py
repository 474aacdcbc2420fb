"""One decoded training example (:class:`AudioSample`) and a batch of them (:class:`AudioBatch`).

Shapes: ``B`` batch, ``C`` channels, ``T`` samples of the segment, ``Ts`` samples of the style
reference, ``K`` codebooks, ``F`` codec frames. Masks are ``True`` on real data, ``False`` on padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor

__all__ = ["AudioBatch", "AudioSample", "collate"]


@dataclass(kw_only=True)
class AudioSample:
    """One cropped/padded example, as produced inside a data-loading worker.

    Attributes:
        key: the WebDataset ``__key__`` (unique within its shard).
        text: the text condition (after the text recipe; may be empty).
        sample_rate: rate of ``audio`` and ``style_audio`` in Hz.
        audio: ``[C, T]`` float32 segment, or None when audio is not decoded (codes only).
        audio_mask: ``[T]`` bool, True on real samples.
        codes: ``[K, F]`` long codec tokens of the same segment (pre-tokenized shards), or None.
        codes_mask: ``[F]`` bool, True on real frames.
        style_audio: ``[C, Ts]`` paired style reference (zeros when absent), or None if not requested.
        style_mask: ``[Ts]`` bool, True on real style samples.
        has_style: whether a paired ``style.<ext>`` member was used.
        metadata: the sample's json (plus ``__url__``).
    """

    key: str
    text: str
    sample_rate: int
    audio: Tensor | None = None
    audio_mask: Tensor | None = None
    codes: Tensor | None = None
    codes_mask: Tensor | None = None
    style_audio: Tensor | None = None
    style_mask: Tensor | None = None
    has_style: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class AudioBatch:
    """A batch of :class:`AudioSample` (a dataclass, so Lightning moves its tensors to the device).

    Attributes:
        audio: ``[B, C, T]`` float32, or None (codes-only loading).
        audio_mask: ``[B, T]`` bool, True on real samples (False on the padding of short tracks).
        codes: ``[B, K, F]`` long, or None (raw-audio shards: encode on the fly).
        codes_mask: ``[B, F]`` bool, True on real frames.
        texts: ``B`` strings (possibly empty).
        style_audio: ``[B, C, Ts]`` paired style references (zeros where ``has_style`` is False), or None.
        style_mask: ``[B, Ts]`` bool, True on real style samples, or None.
        has_style: ``[B]`` bool, True where a paired ``style.<ext>`` member was loaded, or None.
        metadata: ``B`` json dicts.
        keys: ``B`` sample keys.
        sample_rate: rate of ``audio`` / ``style_audio`` in Hz.
        frame_rate: frame rate of ``codes`` in Hz, or None.
    """

    audio: Tensor | None = None
    audio_mask: Tensor | None = None
    codes: Tensor | None = None
    codes_mask: Tensor | None = None
    texts: list[str] = field(default_factory=list)
    style_audio: Tensor | None = None
    style_mask: Tensor | None = None
    has_style: Tensor | None = None
    metadata: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    sample_rate: int = 0
    frame_rate: float | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def pin_memory(self) -> AudioBatch:
        """Copy with every tensor in pinned memory (called by ``DataLoader(pin_memory=True)``)."""
        updates = {
            f.name: getattr(self, f.name).pin_memory()
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **updates)


def _stack(samples: Sequence[AudioSample], name: str) -> Tensor | None:
    values = [getattr(s, name) for s in samples]
    present = [v is not None for v in values]
    if not any(present):
        return None
    if not all(present):
        raise ValueError(f"collate: field {name!r} is set on some samples but not on others")
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) != 1:
        raise ValueError(f"collate: field {name!r} has different shapes across samples: {sorted(shapes)}")
    return torch.stack(values)


def collate(samples: Sequence[AudioSample], *, frame_rate: float | None = None) -> AudioBatch:
    """Stack samples of equal shapes into an :class:`AudioBatch` (``ValueError`` on mismatch)."""
    if len(samples) == 0:
        raise ValueError("collate: samples must hold at least one AudioSample")
    rates = {s.sample_rate for s in samples}
    if len(rates) != 1:
        raise ValueError(f"collate: samples have different sample rates {sorted(rates)}")
    style = _stack(samples, "style_audio")
    return AudioBatch(
        audio=_stack(samples, "audio"),
        audio_mask=_stack(samples, "audio_mask"),
        codes=_stack(samples, "codes"),
        codes_mask=_stack(samples, "codes_mask"),
        texts=[s.text for s in samples],
        style_audio=style,
        style_mask=_stack(samples, "style_mask"),
        has_style=None if style is None else torch.tensor([s.has_style for s in samples], dtype=torch.bool),
        metadata=[s.metadata for s in samples],
        keys=[s.key for s in samples],
        sample_rate=rates.pop(),
        frame_rate=frame_rate,
    )
