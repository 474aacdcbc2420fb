"""Decoder-only transformer stack (MusicGen's): pre-norm, GELU FFN, sinusoidal positions, KV cache."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylecond.lm.attention import CrossAttention, SelfAttention, causal_padding_mask, cross_masks
from stylecond.utils.positions import sinusoidal_embedding


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
    """

    keys: Tensor
    values: Tensor
    positions: Tensor
    key_valid: Tensor | None = None
    cross_kv: list[tuple[Tensor, Tensor]] | None = None
    cross_mask: Tensor | None = None
    cross_any: Tensor | None = None
    length: int = 0

    @property
    def max_len(self) -> int:
        return int(self.keys.shape[3])

    @property
    def batch_size(self) -> int:
        return int(self.keys.shape[1])


class TransformerLayer(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, GELU FFN; dropout on each residual branch.

    Args:
        dim: model width.
        num_heads: attention heads.
        ffn_dim: hidden width of the feed-forward block.
        dropout: dropout on residual branches and attention weights.
        cross_attention: add a cross-attention block.
        cross_dim: width of the cross-attention source.
        bias: biases in linear layers.
        norm_bias: biases in the layer norms.
        norm_eps: layer norm epsilon.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float,
        cross_attention: bool,
        cross_dim: int,
        bias: bool,
        norm_bias: bool,
        norm_eps: float,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, bias=norm_bias)
        self.self_attn = SelfAttention(dim=dim, num_heads=num_heads, dropout=dropout, bias=bias)
        self.norm_cross: nn.LayerNorm | None = None
        self.cross_attn: CrossAttention | None = None
        if cross_attention:
            self.norm_cross = nn.LayerNorm(dim, eps=norm_eps, bias=norm_bias)
            self.cross_attn = CrossAttention(
                dim=dim, num_heads=num_heads, cross_dim=cross_dim, dropout=dropout, bias=bias
            )
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps, bias=norm_bias)
        self.linear1 = nn.Linear(dim, ffn_dim, bias=bias)
        self.linear2 = nn.Linear(ffn_dim, dim, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        *,
        attn_mask: Tensor | None,
        past: tuple[Tensor, Tensor] | None = None,
        start: int = 0,
        cross_kv: tuple[Tensor, Tensor] | None = None,
        cross_mask: Tensor | None = None,
        cross_any: Tensor | None = None,
    ) -> Tensor:
        x = x + self.drop(self.self_attn(self.norm1(x), attn_mask=attn_mask, past=past, start=start))
        if cross_kv is not None and self.cross_attn is not None and self.norm_cross is not None:
            x = x + self.drop(self.cross_attn(self.norm_cross(x), cross_kv, cross_mask, cross_any))
        return x + self.drop(self.linear2(F.gelu(self.linear1(self.norm2(x)))))


class Transformer(nn.Module):
    """Stack of :class:`TransformerLayer` with sinusoidal positions added at the input and a final norm.

    Args:
        dim: model width D.
        num_heads: attention heads.
        num_layers: number of layers.
        ffn_dim: FFN hidden width (None = 4 * dim).
        dropout: dropout on the input, residual branches and attention weights.
        cross_attention: add cross-attention blocks.
        cross_dim: width of the cross-attention source (None = dim).
        bias: biases in linear layers (MusicGen: False).
        norm_bias: biases in the layer norms (MusicGen: True).
        norm_eps: layer norm epsilon (MusicGen: 1e-5).
        max_period: period of the slowest sinusoid (MusicGen: 10000).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        num_layers: int,
        ffn_dim: int | None = None,
        dropout: float = 0.0,
        cross_attention: bool = False,
        cross_dim: int | None = None,
        bias: bool = False,
        norm_bias: bool = True,
        norm_eps: float = 1e-5,
        max_period: float = 10000.0,
    ) -> None:
        super().__init__()
        self.dim, self.num_heads, self.max_period = dim, num_heads, max_period
        self.cross_dim = cross_dim or dim
        self.has_cross = cross_attention
        self.layers = nn.ModuleList(
            TransformerLayer(
                dim=dim,
                num_heads=num_heads,
                ffn_dim=ffn_dim or 4 * dim,
                dropout=dropout,
                cross_attention=cross_attention,
                cross_dim=self.cross_dim,
                bias=bias,
                norm_bias=norm_bias,
                norm_eps=norm_eps,
            )
            for _ in range(num_layers)
        )
        self.out_norm = nn.LayerNorm(dim, eps=norm_eps, bias=norm_bias)
        self.drop = nn.Dropout(dropout)

    def _cross_kv(self, cross: Tensor) -> list[tuple[Tensor, Tensor]]:
        out = []
        for layer in self.layers:
            assert isinstance(layer, TransformerLayer) and layer.cross_attn is not None
            out.append(layer.cross_attn.key_values(cross))
        return out

    def allocate_cache(
        self,
        batch_size: int,
        max_len: int,
        *,
        device: torch.device,
        dtype: torch.dtype,
        key_valid: Tensor | None = None,
        cross: Tensor | None = None,
        cross_mask: Tensor | None = None,
    ) -> KVCache:
        """Preallocate a cache for ``max_len`` positions. ``key_valid [B, P]`` marks the valid prefix
        positions (later positions are valid); ``cross [B, Sc, cross_dim]`` with ``cross_mask [B, Sc]``
        is projected once per layer."""
        shape = (len(self.layers), batch_size, self.num_heads, max_len, self.dim // self.num_heads)
        keys = torch.empty(shape, device=device, dtype=dtype)
        pos = sinusoidal_embedding(torch.arange(max_len, device=device), self.dim, max_period=self.max_period)
        cache = KVCache(keys=keys, values=torch.empty_like(keys), positions=pos.to(dtype))
        if key_valid is not None and not bool(key_valid.all()):
            full = torch.ones(batch_size, max_len, dtype=torch.bool, device=device)
            full[:, : key_valid.shape[1]] = key_valid.to(device)
            cache.key_valid = full
        if cross is not None and self.has_cross:
            cross = cross.to(device=device, dtype=dtype)
            cache.cross_kv = self._cross_kv(cross)
            if cross_mask is not None:
                cache.cross_mask, cache.cross_any = cross_masks(cross_mask.to(device))
        return cache

    def prefill(self, x: Tensor, cache: KVCache, *, rows: Tensor | None = None) -> None:
        """Run a prefix ``x [B, P, D]`` into an empty ``cache``, only for the batch ``rows`` (long ``[R]``).

        The other rows get zero keys/values: use it for rows whose prefix positions are all invalid (e.g. the
        null guidance branch), which no later position attends to. ``rows=None`` = all rows.
        """
        if cache.length:
            raise ValueError(f"prefill needs an empty cache, it holds {cache.length} positions")
        if rows is None or rows.numel() == x.shape[0]:
            self(x, cache=cache)
            return
        p = x.shape[1]
        cache.keys[:, :, :, :p].zero_()
        cache.values[:, :, :, :p].zero_()
        if rows.numel():
            n_layers, _, heads, _, head_dim = cache.keys.shape
            shape = (n_layers, rows.numel(), heads, p, head_dim)
            sub = KVCache(
                keys=cache.keys.new_empty(shape),
                values=cache.values.new_empty(shape),
                positions=cache.positions,
                key_valid=None if cache.key_valid is None else cache.key_valid[rows],
                cross_kv=None if cache.cross_kv is None else [(k[rows], v[rows]) for k, v in cache.cross_kv],
                cross_mask=None if cache.cross_mask is None else cache.cross_mask[rows],
                cross_any=None if cache.cross_any is None else cache.cross_any[rows],
            )
            self(x[rows], cache=sub)
            cache.keys[:, :, :, :p].index_copy_(1, rows, sub.keys)
            cache.values[:, :, :, :p].index_copy_(1, rows, sub.values)
        cache.length = p

    def forward(
        self,
        x: Tensor,
        *,
        key_valid: Tensor | None = None,
        cross: Tensor | None = None,
        cross_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """``x [B, N, D]`` (embedded inputs, no positions) -> ``[B, N, D]`` (after the final norm).

        Without ``cache``: causal attention over the N positions (``key_valid [B, N]``: False = padded
        position, attended by nobody but itself); ``cross [B, Sc, cross_dim]`` / ``cross_mask [B, Sc]``.
        With ``cache``: the N positions continue the cache (which holds key validity and cross keys).
        """
        n = x.shape[1]
        if cache is not None:
            start = cache.length
            if start + n > cache.max_len:
                raise ValueError(f"KV cache full: {start} + {n} positions > max_len={cache.max_len}")
            pos = cache.positions[start : start + n]
            attn_mask = causal_padding_mask(cache.key_valid, start, n, x.device)
            if attn_mask is not None:  # additive form once per call instead of one conversion per layer
                attn_mask = torch.zeros(attn_mask.shape, dtype=x.dtype, device=x.device).masked_fill_(
                    ~attn_mask, float("-inf")
                )
            cross_kv, c_mask, c_any = cache.cross_kv, cache.cross_mask, cache.cross_any
        else:
            start = 0
            pos = sinusoidal_embedding(torch.arange(n, device=x.device), self.dim, max_period=self.max_period)
            attn_mask = None if key_valid is None else causal_padding_mask(key_valid, 0, n, x.device)
            cross_kv = self._cross_kv(cross) if cross is not None and self.has_cross else None
            c_mask, c_any = (
                cross_masks(cross_mask) if cross_kv is not None and cross_mask is not None else (None, None)
            )
        h = self.drop(x + pos.to(x.dtype))
        for i, layer in enumerate(self.layers):
            h = layer(
                h,
                attn_mask=attn_mask,
                past=(cache.keys[i], cache.values[i]) if cache is not None else None,
                start=start,
                cross_kv=cross_kv[i] if cross_kv is not None else None,
                cross_mask=c_mask,
                cross_any=c_any,
            )
        if cache is not None:
            cache.length = start + n
        return self.out_norm(h)
