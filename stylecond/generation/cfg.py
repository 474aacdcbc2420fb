"""Classifier-free guidance formulas as pure functions on logits.

- plain CFG: ``l_null + alpha * (l_cond - l_null)``
- double CFG (MusicGen-Style): ``l_null + alpha * (l_style + beta * (l_full - l_style) - l_null)``

``l_full`` is conditioned on text and style, ``l_style`` on the style only, ``l_null`` on nothing.
With ``beta = 1`` double CFG is plain CFG on the full condition; a larger ``beta`` pushes the text harder.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor


def check_coef(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number (not a bool, not a tensor), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{name} must be a real number (int or float), got {type(value).__name__}: {value!r}"
        )
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


def _check_same_shape(**tensors: Tensor) -> None:
    items = list(tensors.items())
    first_name, first = items[0]
    for name, t in items:
        if not isinstance(t, Tensor):
            raise ValueError(f"{name} must be a Tensor of logits, got {type(t).__name__}")
        if t.shape != first.shape:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)} but {first_name} has {tuple(first.shape)}; "
                "all logits must have the same shape"
            )


def _work_dtype(t: Tensor) -> torch.dtype:
    return torch.promote_types(t.dtype, torch.float32)


def cfg(l_cond: Tensor, l_null: Tensor, alpha: float) -> Tensor:
    """Plain classifier-free guidance: ``l_null + alpha * (l_cond - l_null)``.

    Computed in (at least) float32 into one new buffer, updated in place; the inputs are not modified.

    Args:
        l_cond: conditional logits ``[..., card]``.
        l_null: unconditional logits, same shape.
        alpha: guidance coefficient (1 = no guidance).
    """
    a = check_coef(alpha, "alpha")
    _check_same_shape(l_cond=l_cond, l_null=l_null)
    null = l_null.to(_work_dtype(l_null))
    return (l_cond.to(null.dtype) - null).mul_(a).add_(null)


def double_cfg(l_full: Tensor, l_style: Tensor, l_null: Tensor, alpha: float, beta: float) -> Tensor:
    """Double classifier-free guidance: ``l_null + alpha * (l_style + beta * (l_full - l_style) - l_null)``.

    Args:
        l_full: logits conditioned on text and style ``[..., card]``.
        l_style: logits conditioned on the style only, same shape.
        l_null: unconditional logits, same shape.
        alpha: overall guidance coefficient (``cfg_coef``).
        beta: text-over-style coefficient (``cfg_coef_beta``); 1 gives plain CFG on ``l_full``.

    Computed in (at least) float32 into one new buffer, updated in place; the inputs are not modified.
    """
    a = check_coef(alpha, "alpha")
    b = check_coef(beta, "beta")
    _check_same_shape(l_full=l_full, l_style=l_style, l_null=l_null)
    dtype = _work_dtype(l_null)
    style, null = l_style.to(dtype), l_null.to(dtype)
    out = (l_full.to(dtype) - style).mul_(b).add_(style)
    return out.sub_(null).mul_(a).add_(null)
