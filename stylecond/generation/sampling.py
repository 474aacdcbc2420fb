"""Draw the next token from logits: greedy, top-k, top-p (nucleus) and temperature."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor


def check_sampling_args(top_k: object, top_p: object, temperature: object) -> tuple[int, float, float]:
    """Validate sampling settings; returns them as ``(int, float, float)`` or raises ValueError naming the bad one."""
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or int(top_k) < 0:
        raise ValueError(f"top_k must be an int >= 0 (0 = no top-k filter), got {top_k!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0.0 <= float(top_p) <= 1.0:
        raise ValueError(f"top_p must be a float in [0, 1] (0 = no nucleus filter), got {top_p!r}")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(float(temperature))
        or float(temperature) < 0.0
    ):
        raise ValueError(f"temperature must be a finite float >= 0 (0 = greedy), got {temperature!r}")
    return int(top_k), float(top_p), float(temperature)


def sample_next(
    logits: Tensor,
    *,
    top_k: int = 250,
    top_p: float = 0.0,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample one token per row of ``logits [..., card]``; returns ``tokens [...]`` (long).

    ``temperature == 0`` is greedy (argmax). Otherwise the logits are divided by ``temperature``, then
    restricted to the ``top_k`` largest (0 = all) and, if ``top_p > 0``, further to the smallest prefix
    of those whose probability mass reaches ``top_p``; both filters apply when both are set (use
    ``top_k=0`` for pure nucleus sampling). Sampling runs on the small top-k set only.

    Args:
        logits: unnormalised scores ``[..., card]`` (any float dtype; computed in float32).
        top_k: keep the k most likely tokens (0 = no limit; values above ``card`` mean no limit).
        top_p: nucleus mass in [0, 1] (0 = off).
        temperature: softmax temperature (0 = greedy).
        generator: optional ``torch.Generator`` for reproducible draws (on the logits' device).
    """
    k, p, temp = check_sampling_args(top_k, top_p, temperature)
    if not isinstance(logits, Tensor) or logits.dim() < 1 or not logits.is_floating_point():
        raise ValueError("logits must be a floating-point Tensor [..., card]")
    card = logits.shape[-1]
    if card < 1:
        raise ValueError("logits must have a non-empty last (card) dimension")
    lead = logits.shape[:-1]
    if temp == 0.0:
        return logits.argmax(dim=-1)
    flat = logits.reshape(-1, card)
    idx: Tensor | None = None
    if 0 < k < card:
        flat, idx = flat.topk(k, dim=-1)  # sorted, descending
    elif p > 0.0:
        flat, idx = flat.sort(dim=-1, descending=True)
    scores = flat.float() / temp
    probs = torch.softmax(scores, dim=-1)
    if p > 0.0:
        # Drop a token when the mass strictly before it already reaches top_p (the first is always kept).
        before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(before >= p, 0.0)
    choice = torch.multinomial(probs, 1, generator=generator)
    tokens = choice if idx is None else idx.gather(-1, choice)
    return tokens.reshape(lead)
