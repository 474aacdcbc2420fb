"""Multi-head self- and cross-attention on ``torch.nn.functional.scaled_dot_product_attention``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylecond.kernels import native


def causal_padding_mask(
    key_valid: Tensor | None, start: int, num_queries: int, device: torch.device
) -> Tensor | None:
    """Boolean attention mask (True = attend) for queries at ``start .. start+N-1`` over keys ``0 .. start+N-1``.

    Key j is visible to query i if ``j <= i`` and (``key_valid[b, j]`` or ``j == i``): a padded (invalid)
    prefix position still sees itself so that its row is never empty (no NaN), while no other position
    attends to it. Returns ``[B, 1, N, start+N]``, or None when plain causality suffices (no padding).
    """
    end = start + num_queries
    if key_valid is None:
        if num_queries == 1:
            return None
        q = torch.arange(start, end, device=device)[:, None]
        k = torch.arange(end, device=device)[None, :]
        return (k <= q)[None, None]
    valid = key_valid[:, :end]
    if num_queries == 1:  # the query is the last key; callers mark audio positions valid
        return valid[:, None, None, :]
    q = torch.arange(start, end, device=device)[:, None]
    k = torch.arange(end, device=device)[None, :]
    return ((k <= q) & (valid[:, None, :] | (k == q)))[:, None]


def key_padding_mask(key_valid: Tensor) -> Tensor:
    """Non-causal boolean attention mask ``[B, 1, N, N]`` (True = attend) from ``key_valid [B, N]``: every
    query sees the valid keys, and itself (so a padded row is never empty)."""
    n = key_valid.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=key_valid.device)
    return (key_valid[:, None, :] | eye[None])[:, None]


class SelfAttention(nn.Module):
    """Multi-head self-attention (causal, with an optional preallocated KV cache, or bidirectional).

    Args:
        dim: model width D.
        num_heads: number of heads (must divide ``dim``).
        dropout: attention-weight dropout (training only).
        bias: biases in the projections.
        causal: each position attends to itself and the positions before it only.
    """

    def __init__(
        self, *, dim: int, num_heads: int, dropout: float = 0.0, bias: bool = False, causal: bool = True
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.causal = causal
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.in_proj = nn.Linear(dim, 3 * dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def _heads(self, x: Tensor) -> Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        *,
        attn_mask: Tensor | None,
        past: tuple[Tensor, Tensor] | None = None,
        start: int | Tensor = 0,
        span: int | None = None,
    ) -> Tensor:
        """``x [B, N, D]`` -> ``[B, N, D]``.

        Without ``past`` the N positions attend among themselves, causally or not (``attn_mask`` None =
        plain causal / full attention).
        With ``past = (keys, values)`` (each ``[B, H, max_len, Dh]``, preallocated), the new keys/values are
        written in place at ``start .. start+N-1`` and the queries attend to ``0 .. start+N-1`` (in the
        cache's dtype when it differs from ``x``'s, e.g. a bfloat16 cache: half the bytes per step). A single
        position on the CPU runs on stylecond's decode-attention kernel where it can (:meth:`_native_step`).
        A static step (fixed shapes, no host values: CUDA graphs) passes ``start`` as the long positions
        ``[N]`` on the device and ``span``: the keys ``0 .. span-1`` are attended under ``attn_mask``, which
        must hide the unwritten ones.
        """
        b, n, d = x.shape
        if past is not None and n == 1 and isinstance(start, int):
            out = self._native_step(x, past, start, attn_mask)
            if out is not None:
                return out
        q, k, v = self.in_proj(x).split(d, dim=-1)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        is_causal = False
        if past is not None and isinstance(start, Tensor):
            keys, values = past
            keys.index_copy_(2, start, k.to(keys.dtype))
            values.index_copy_(2, start, v.to(values.dtype))
            k, v, q = keys[:, :, :span], values[:, :, :span], q.to(keys.dtype)
        elif past is not None:
            keys, values = past
            end = start + n
            keys[:, :, start:end].copy_(k)
            values[:, :, start:end].copy_(v)
            k, v = keys[:, :, :end], values[:, :, :end]
            q = q.to(keys.dtype)
        elif attn_mask is None:
            is_causal = self.causal and n > 1
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p, is_causal=is_causal)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d).to(x.dtype))

    def _native_step(
        self, x: Tensor, past: tuple[Tensor, Tensor], start: int, attn_mask: Tensor | None
    ) -> Tensor | None:
        """One cached position ``x [B, 1, D]`` with the cache write and attention in one call of
        stylecond's CPU kernel (:mod:`~stylecond.kernels.native`), or None where it does not apply (then
        SDPA runs): not CPU float32 inference, a float mask, a head width that is not a multiple of 16 (or
        > 512), a non-contiguous cache, or no kernel on this machine. ``attn_mask`` is None or the boolean
        ``[B, 1, 1, >= start + 1]`` view of the keys' validity."""
        keys, values = past
        if (
            x.device.type != "cpu"
            or x.dtype != torch.float32
            or not native.decode_cache_fits(keys, values)
            or (attn_mask is not None and (attn_mask.dtype != torch.bool or attn_mask.stride(-1) != 1))
            or self.training
            or (torch.is_grad_enabled() and x.requires_grad)
        ):
            return None
        kernels = native.load()[0]
        if kernels is None:
            return None
        qkv = self.in_proj(x[:, 0]).contiguous()  # [B, 3D]
        out = kernels.decode_attention(qkv, keys, values, start, attn_mask, self.num_heads)  # [B, D]
        return self.out_proj(out[:, None])


class CrossAttention(nn.Module):
    """Multi-head cross-attention to a conditioning sequence (key padding mask; a sample whose keys are all
    masked gets a zero output, the same as attending to all-zero null embeddings without biases).

    Args:
        dim: model width D (queries).
        num_heads: number of heads.
        cross_dim: width of the conditioning embeddings (keys/values input).
        dropout: attention-weight dropout (training only).
        bias: biases in the projections.
    """

    def __init__(
        self, *, dim: int, num_heads: int, cross_dim: int, dropout: float = 0.0, bias: bool = False
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.kv_proj = nn.Linear(cross_dim, 2 * dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def key_values(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """``src [B, Sc, cross_dim]`` -> keys, values ``[B, H, Sc, Dh]`` (cacheable)."""
        b, s, _ = src.shape
        k, v = self.kv_proj(src).view(b, s, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(
        self, x: Tensor, kv: tuple[Tensor, Tensor], mask: Tensor | None, any_valid: Tensor | None
    ) -> Tensor:
        """``x [B, N, D]``; ``kv`` from :meth:`key_values`; ``mask [B, 1, 1, Sc]`` bool with no all-False
        rows (see :func:`cross_masks`); ``any_valid [B, 1, 1]`` float or None."""
        b, n, d = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask, dropout_p=p)
        out = self.out_proj(out.transpose(1, 2).reshape(b, n, d))
        return out if any_valid is None else out * any_valid.to(out.dtype)


def cross_masks(mask: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """From a key padding ``mask [B, Sc]`` (True = valid) build the SDPA mask ``[B, 1, 1, Sc]`` (all-False
    rows opened to avoid NaN) and the zeroing factor ``[B, 1, 1]`` (None when every row has a valid key)."""
    if bool(mask.all()):
        return None, None
    any_valid = mask.any(dim=1)
    safe = mask | ~any_valid[:, None]
    return safe[:, None, None, :], any_valid[:, None, None].float()
