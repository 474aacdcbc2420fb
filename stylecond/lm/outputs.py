"""Typed outputs of :class:`~stylecond.lm.music_lm.MusicLM`: logits, losses and the decoding state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from stylecond.layers.transformer import KVCache


@dataclass
class LMOutput:
    """``logits [B, K, T, card]`` aligned to the input codes, ``mask [B, K, T]`` (True = a real prediction)."""

    logits: Tensor
    mask: Tensor


@dataclass
class LossOutput:
    """``loss`` (scalar, mean over codebooks) and ``per_codebook [K]`` masked cross-entropies."""

    loss: Tensor
    per_codebook: Tensor


@dataclass
class DecodeState:
    """Incremental decoding state: the KV cache (prefix already in it) and the step budget.

    ``check_ids=False``: :meth:`MusicLM.step` trusts the token ids (validated once by the caller);
    ``dtype``: the activations' (None = the cache's); ``static_step``: the
    :class:`~stylecond.lm.static_step.StaticStep` that runs single-position steps (CUDA graphs), or None."""

    cache: KVCache
    max_steps: int
    prefix_len: int
    check_ids: bool = True
    dtype: torch.dtype | None = None
    static_step: Any = None

    @property
    def offset(self) -> int:
        """Number of pattern steps fed so far."""
        return self.cache.length - self.prefix_len
