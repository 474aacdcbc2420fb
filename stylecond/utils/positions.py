"""Sinusoidal position embeddings: one helper for the LM and the style encoder."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

#: How the sinusoids' frequencies are spaced (``i`` = 0 .. dim/2 - 1):
#: ``"musicgen"``: ``max_period ** (-i / (dim/2 - 1))`` (audiocraft's: the slowest period is exactly
#: ``max_period``); ``"transformer"``: ``max_period ** (-i / (dim/2))`` (Vaswani et al.'s ``10000^(-2i/d)``).
Spacing = Literal["musicgen", "transformer"]


def sinusoidal_embedding(
    positions: Tensor, dim: int, *, max_period: float = 10000.0, spacing: Spacing = "musicgen"
) -> Tensor:
    """``positions [S]`` -> ``[S, dim]`` float32, ``cat(cos, sin)`` (zero-padded when ``dim`` is odd).

    The MusicLM uses ``"musicgen"`` spacing; the style encoder of stylecond 0.1 used ``"transformer"``
    spacing, which its exports keep.
    """
    half = dim // 2
    steps = torch.arange(half, device=positions.device, dtype=torch.float32)
    if spacing == "musicgen":
        freqs = torch.exp(steps * -(math.log(max_period) / max(half - 1, 1)))
    elif spacing == "transformer":
        freqs = torch.exp(-math.log(max_period) * steps / max(half, 1))
    else:
        raise ValueError(f"spacing must be 'musicgen' or 'transformer'; got {spacing!r}")
    args = positions.float()[:, None] * freqs[None, :]
    return F.pad(torch.cat([torch.cos(args), torch.sin(args)], dim=-1), (0, dim - 2 * half))
