"""Draw the next token from logits: greedy, top-k, top-p (nucleus) and temperature."""

from __future__ import annotations

import torch
from torch import Tensor

from stylecond.generation.settings import SamplingSettings, check_sampling_args


def sample_next(
    logits: Tensor,
    *,
    top_k: int = SamplingSettings.top_k,
    top_p: float = SamplingSettings.top_p,
    temperature: float = SamplingSettings.temperature,
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
