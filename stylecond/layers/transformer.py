"""Transformer stack (MusicGen's): pre-norm layers, sinusoidal positions, KV cache; causal (the LM) or
bidirectional (the style encoder)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from stylecond.layers.attention import causal_padding_mask, cross_masks, key_padding_mask
from stylecond.layers.kv_cache import KVCache
from stylecond.layers.native_step import NativeStep
from stylecond.layers.transformer_layer import TransformerLayer
from stylecond.utils.positions import Spacing, sinusoidal_embedding

__all__ = ["KVCache", "Transformer", "TransformerLayer"]


class Transformer(nn.Module):
    """Stack of :class:`TransformerLayer` with sinusoidal positions added at the input and a final norm.

    Causal with a KV cache (the LM), or bidirectional with a key padding mask (``causal=False``: the
    style encoder; no cache).

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
        causal: causal attention (False: every position sees every valid one).
        final_norm: a LayerNorm after the last layer (MusicGen's LM: yes; audiocraft's style encoder: no).
        positions: add sinusoidal positions to the input.
        position_spacing: frequency spacing of the sinusoids (see :mod:`stylecond.utils.positions`).
        activation_checkpointing: in training, keep only each layer's input and recompute the layer in
            the backward pass (less memory, ~1/3 more compute); see :meth:`set_activation_checkpointing`.
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
        causal: bool = True,
        final_norm: bool = True,
        positions: bool = True,
        position_spacing: Spacing = "musicgen",
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.activation_checkpointing = activation_checkpointing
        self.dim, self.num_heads, self.max_period = dim, num_heads, max_period
        self.causal, self.use_positions, self.position_spacing = causal, positions, position_spacing
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
                causal=causal,
            )
            for _ in range(num_layers)
        )
        self.out_norm: nn.Module = (
            nn.LayerNorm(dim, eps=norm_eps, bias=norm_bias) if final_norm else nn.Identity()
        )
        self.drop = nn.Dropout(dropout)

    def set_activation_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each layer in the backward pass instead of keeping its activations (training only)."""
        self.activation_checkpointing = enabled

    def _positions(self, length: int, device: torch.device) -> Tensor:
        """Sinusoidal positions ``[length, dim]`` (zeros when positions are off)."""
        if not self.use_positions:
            return torch.zeros(length, self.dim, device=device)
        steps = torch.arange(length, device=device)
        return sinusoidal_embedding(
            steps, self.dim, max_period=self.max_period, spacing=self.position_spacing
        )

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
        activation_dtype: torch.dtype | None = None,
    ) -> KVCache:
        """Preallocate a cache of ``dtype`` for ``max_len`` positions. ``key_valid [B, P]`` marks the valid
        prefix positions (later positions are valid); ``cross [B, Sc, cross_dim]`` with ``cross_mask
        [B, Sc]`` is projected once per layer. Positions and cross keys are kept in ``activation_dtype``
        (default ``dtype``)."""
        if not self.causal:
            raise ValueError("a KV cache needs a causal Transformer")
        shape = (len(self.layers), batch_size, self.num_heads, max_len, self.dim // self.num_heads)
        keys = torch.empty(shape, device=device, dtype=dtype)
        pos = self._positions(max_len, device)
        act = activation_dtype or dtype
        cache = KVCache(keys=keys, values=torch.empty_like(keys), positions=pos.to(act))
        if key_valid is not None and not bool(key_valid.all()):
            full = torch.ones(batch_size, max_len, dtype=torch.bool, device=device)
            full[:, : key_valid.shape[1]] = key_valid.to(device)
            cache.key_valid = full
        if cross is not None and self.has_cross:
            cache.cross_kv = self._cross_kv(cross.to(device=device, dtype=act))
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

    def _native_step(self, x: Tensor, cache: KVCache) -> Tensor | None:
        """One position ``x [B, 1, D]`` through every layer in one native call (:mod:`.native_step`), or
        None where that does not apply (then the layers run one by one)."""
        if x.dtype != torch.float32 or (torch.is_grad_enabled() and x.requires_grad):
            return None
        if cache.native_step is None:  # built once per cache (its pointers are the cache's and weights')
            cache.native_step = NativeStep.build(self, cache) or False
        if not cache.native_step:
            return None
        start = cache.length
        if start + 1 > cache.max_len:
            raise ValueError(f"KV cache full: {start} + 1 positions > max_len={cache.max_len}")
        h = cache.native_step(x[:, 0] + cache.positions[start], start)
        cache.length = start + 1
        return h[:, None]

    def static_step(self, x: Tensor, cache: KVCache, pos: Tensor, span: int) -> Tensor:
        """One position ``x [B, 1, D]`` (embedded, no positions) written at the cache position ``pos`` (long
        ``[1]``, on the device) and attending to the keys ``0 .. span-1`` -> ``[B, 1, D]`` (after the final norm).

        Shapes depend on ``span`` only and nothing is read back to the host, so one CUDA graph of the step
        serves every position below ``span``. ``cache.length`` is left to the caller. The keys and values
        after ``pos`` must be finite (zero them once): masked keys still enter SDPA's products.
        """
        if x.shape[1] != 1 or not 0 < span <= cache.max_len:
            raise ValueError(f"static step: x must be [B, 1, D] and span in 1..{cache.max_len}, got "
                             f"{tuple(x.shape)} and {span}")  # fmt: skip
        visible = torch.arange(span, device=x.device)[None, :] <= pos  # [1, span]
        if cache.key_valid is not None:
            visible = visible & cache.key_valid[:, :span]
        attn_mask = visible[:, None, None, :]  # [B or 1, 1, 1, span]
        h = x + cache.positions.index_select(0, pos).to(x.dtype)
        for i, layer in enumerate(self.layers):
            h = layer(
                h,
                attn_mask=attn_mask,
                past=(cache.keys[i], cache.values[i]),
                start=pos,
                span=span,
                cross_kv=cache.cross_kv[i] if cache.cross_kv is not None else None,
                cross_mask=cache.cross_mask,
                cross_any=cache.cross_any,
            )
        return self.out_norm(h)

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

        Without ``cache``: causal (or bidirectional) attention over the N positions (``key_valid [B, N]``:
        False = padded position, attended by nobody but itself); ``cross [B, Sc, cross_dim]`` /
        ``cross_mask [B, Sc]``.
        With ``cache``: the N positions continue the cache (which holds key validity and cross keys).
        """
        n = x.shape[1]
        if cache is not None and n == 1 and not self.training:
            h = self._native_step(x, cache)
            if h is not None:
                return self.out_norm(h)
        if cache is not None:
            start = cache.length
            if start + n > cache.max_len:
                raise ValueError(f"KV cache full: {start} + {n} positions > max_len={cache.max_len}")
            pos = cache.positions[start : start + n]
            attn_mask = causal_padding_mask(cache.key_valid, start, n, x.device)
            # one position: the boolean validity view (the CPU decode kernel reads it; SDPA takes it too);
            # else the additive form once per call instead of one conversion per layer
            if attn_mask is not None and n > 1:
                mask_dtype = cache.keys.dtype  # attention runs in the cache's dtype
                attn_mask = torch.zeros(attn_mask.shape, dtype=mask_dtype, device=x.device).masked_fill_(
                    ~attn_mask, float("-inf")
                )
            cross_kv, c_mask, c_any = cache.cross_kv, cache.cross_mask, cache.cross_any
        else:
            start = 0
            pos = self._positions(n, x.device)
            if key_valid is None:
                attn_mask = None
            elif self.causal:
                attn_mask = causal_padding_mask(key_valid, 0, n, x.device)
            else:
                attn_mask = key_padding_mask(key_valid.to(x.device))
            cross_kv = self._cross_kv(cross) if cross is not None and self.has_cross else None
            c_mask, c_any = (
                cross_masks(cross_mask) if cross_kv is not None and cross_mask is not None else (None, None)
            )
        h = self.drop(x + pos.to(x.dtype))
        recompute = (
            self.activation_checkpointing and self.training and cache is None and torch.is_grad_enabled()
        )
        for i, layer in enumerate(self.layers):
            kwargs: dict[str, Any] = dict(
                attn_mask=attn_mask,
                past=(cache.keys[i], cache.values[i]) if cache is not None else None,
                start=start,
                cross_kv=cross_kv[i] if cross_kv is not None else None,
                cross_mask=c_mask,
                cross_any=c_any,
            )
            h = checkpoint(layer, h, use_reentrant=False, **kwargs) if recompute else layer(h, **kwargs)
        if cache is not None:
            cache.length = start + n
        return self.out_norm(h)
