"""Pins the adapter around torch's private packed low-bit kernels: exact round-to-nearest bounds on the
weights and outputs equal to a plain matmul with the dequantized weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stylecond.lm.lowbit_linear import Int4Linear, Int8Linear


@pytest.mark.parametrize("bias", [False, True])
def test_int4_rounds_to_nearest_and_computes_with_its_weights(bias: bool) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(256, 96, bias=bias)
    q = Int4Linear(linear, group_size=128)
    w = linear.weight.detach().view(96, 2, 128)
    step = (w.amax(-1) - w.amin(-1)) / 15  # [N, groups]
    error = (q.dequantized_weight().view(96, 2, 128) - w).abs()
    # each weight lands on the nearest of 16 levels: at most half a (bfloat16-rounded, 1 % larger) step
    # away, plus the kernel's bfloat16 rounding of what it computes (2^-8 relative)
    assert bool((error <= 0.505 * step[..., None] + 2**-8 * w.abs() + 1e-6).all())
    assert float((error / step[..., None]).mean()) < 0.3  # round to nearest: 0.25 on average
    x = torch.randn(2, 5, 256)
    want = x.to(torch.bfloat16).float() @ q.dequantized_weight().t() + (linear.bias if bias else 0)
    got = q(x)
    assert got.shape == (2, 5, 96) and got.dtype == torch.float32
    torch.testing.assert_close(got, want.detach(), rtol=0.02, atol=0.02)


def test_int8_rounds_to_nearest_and_computes_with_its_weights() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    q = Int8Linear(linear)
    step = linear.weight.detach().abs().amax(1) / 127
    error = (q.dequantized_weight() - linear.weight.detach()).abs()
    assert bool((error <= 0.5 * step[:, None] * 1.01 + 1e-6).all())
    x = torch.randn(3, 64)
    want = x.to(torch.bfloat16).float() @ q.dequantized_weight().t() + linear.bias.detach()
    torch.testing.assert_close(q(x), want, rtol=0.02, atol=0.02)


def test_int4_width_must_fit_the_group() -> None:
    with pytest.raises(ValueError, match=r"in_features \(100\) divisible by group_size \(128"):
        Int4Linear(nn.Linear(100, 8))
