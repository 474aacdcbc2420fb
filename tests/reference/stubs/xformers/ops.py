"""Stand-in for xformers.ops with torch implementations of the two functions audiocraft uses."""

import torch

unbind = torch.unbind


class LowerTriangularMask:
    """Marker object; audiocraft only passes it to memory_efficient_attention below."""


def memory_efficient_attention(q, k, v, attn_bias=None, p: float = 0.0):
    # xformers layout: [B, T, H, D]; torch SDPA layout: [B, H, T, D]
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    is_causal = isinstance(attn_bias, LowerTriangularMask)
    mask = None if (attn_bias is None or is_causal) else attn_bias
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal
    )
    return out.transpose(1, 2)
