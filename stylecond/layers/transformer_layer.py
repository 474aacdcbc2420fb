"""One pre-norm transformer block: self-attention, optional cross-attention, GELU feed-forward."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from stylecond.layers.attention import CrossAttention, SelfAttention


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
        causal: causal self-attention (False: bidirectional, e.g. the style encoder).
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
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, bias=norm_bias)
        self.self_attn = SelfAttention(
            dim=dim, num_heads=num_heads, dropout=dropout, bias=bias, causal=causal
        )
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
        start: int | Tensor = 0,
        span: int | None = None,
        cross_kv: tuple[Tensor, Tensor] | None = None,
        cross_mask: Tensor | None = None,
        cross_any: Tensor | None = None,
    ) -> Tensor:
        # dropout is the identity in eval: skip its call there (decoding runs this ~24 times per step)
        drop = self.drop if self.training else _identity
        x = x + drop(self.self_attn(self.norm1(x), attn_mask=attn_mask, past=past, start=start, span=span))
        if cross_kv is not None and self.cross_attn is not None and self.norm_cross is not None:
            x = x + drop(self.cross_attn(self.norm_cross(x), cross_kv, cross_mask, cross_any))
        return x + drop(self.linear2(F.gelu(self.linear1(self.norm2(x)))))


def _identity(x: Tensor) -> Tensor:
    return x
