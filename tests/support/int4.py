"""What stylecond's native int4 kernel computes, written in torch, and the marker for tests that need it."""

from __future__ import annotations

import pytest
import torch

from stylecond.kernels import native
from stylecond.lm.lowbit_linear import Int4Linear

needs_native = pytest.mark.skipif(native.load()[0] is None, reason=native.load()[1])


def native_reference(x: torch.Tensor, layer: Int4Linear, bits: int = 16) -> torch.Tensor:
    """What the native kernel computes, in torch: x rounded per row and group to int8 levels (and, for 16
    bits, the remainder to 1/256 of a level), times the dequantized weight."""
    g = layer.group_size
    rows = x.reshape(-1, layer.in_features).view(-1, layer.in_features // g, g)
    amax = rows.abs().amax(-1, keepdim=True)
    u = rows * torch.where(amax > 0, 127.0 / amax, 0.0)
    levels = u.round()  # half to even, as the CPU rounds
    if bits == 16:
        levels = 256 * levels + ((u - levels) * 256).round().clamp(-128, 127)
        x_hat = (levels * (amax / 127.0 / 256.0)).view(-1, layer.in_features)
    else:
        x_hat = (levels * (amax / 127.0)).view(-1, layer.in_features)
    y = x_hat.double() @ layer.dequantized_weight().double().t()
    return (y if layer.bias is None else y + layer.bias.double()).float().view(*x.shape[:-1], -1)
