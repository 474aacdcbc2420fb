"""The preallocated decoding state of a causal :class:`~stylecond.layers.transformer.Transformer`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor


@dataclass
class KVCache:
    """Preallocated decoding state of a :class:`Transformer`.

    Attributes:
        keys: self-attention keys ``[L, B, H, max_len, Dh]``; positions ``0 .. length-1`` are filled.
        values: same shape as ``keys``.
        positions: sinusoidal table ``[max_len, D]`` in the cache dtype.
        key_valid: ``[B, max_len]`` bool (False = padded prefix position), or None if nothing is padded.
        cross_kv: per layer cross-attention (keys, values) ``[B, H, Sc, Dh]``, or None.
        cross_mask: SDPA cross mask ``[B, 1, 1, Sc]`` or None.
        cross_any: ``[B, 1, 1]`` zeroing factor for samples without any valid cross key, or None.
        length: number of positions written so far.
        native_step: the :class:`~stylecond.layers.native_step.NativeStep` of this cache once built, False
            where it does not apply, None before the first single-position step.
    """

    keys: Tensor
    values: Tensor
    positions: Tensor
    key_valid: Tensor | None = None
    cross_kv: list[tuple[Tensor, Tensor]] | None = None
    cross_mask: Tensor | None = None
    cross_any: Tensor | None = None
    length: int = 0
    native_step: Any = None

    @property
    def max_len(self) -> int:
        return int(self.keys.shape[3])

    @property
    def batch_size(self) -> int:
        return int(self.keys.shape[1])
