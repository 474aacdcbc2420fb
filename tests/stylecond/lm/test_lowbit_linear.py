"""Pins the low-bit layers: exact round-to-nearest bounds on the weights, and outputs equal to a plain
matmul with the dequantized weights (torch's private packed kernels) or, for stylecond's own int4
kernel, to the same computation written in torch (int8 activations per row and group)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stylecond.lm.lowbit_linear import Int4Linear, Int8Linear
from tests.support.int4 import native_reference, needs_native


@pytest.mark.parametrize("bias", [False, True])
def test_int4_torch_kernel_rounds_to_nearest_and_computes_with_its_weights(bias: bool) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(256, 96, bias=bias)
    q = Int4Linear(linear, group_size=128, kernel="torch")
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


@needs_native
@pytest.mark.parametrize("bits", [16, 8])
@pytest.mark.parametrize("group_size", [32, 128, 256])
@pytest.mark.parametrize("rows", [1, 3, 4, 7, 9])  # the kernel tiles rows by 4: every remainder
def test_int4_native_kernel_rounds_to_nearest_and_matches_its_torch_reference(
    group_size: int, rows: int, bits: int
) -> None:
    torch.manual_seed(rows)
    linear = nn.Linear(512, 48, bias=rows % 2 == 1)
    q = Int4Linear(linear, group_size=group_size, kernel="native", activation_bits=bits)  # type: ignore[arg-type]
    assert q.kernel == "native"
    groups = 512 // group_size
    w = linear.weight.detach().view(48, groups, group_size)
    step = (w.amax(-1) - w.amin(-1)) / 15
    error = (q.dequantized_weight().view(48, groups, group_size) - w).abs()
    # nearest of 16 levels, with float16 scale (rounded up: < 0.1 % larger) and offset (2^-11 relative)
    assert bool((error <= 0.501 * step[..., None] + 2**-11 * w.abs().amax(-1, keepdim=True) + 1e-7).all())
    x = torch.randn(rows, 512) * torch.linspace(0.1, 3, 512)  # groups of different ranges
    with torch.no_grad():
        got = q(x)
    assert got.shape == (rows, 48) and got.dtype == torch.float32
    torch.testing.assert_close(got, native_reference(x, q, bits), rtol=1e-5, atol=1e-5)
    exact = x @ q.dequantized_weight().t() + (0 if linear.bias is None else linear.bias.detach())
    error = float((got - exact).norm() / exact.norm())
    assert error < (1e-4 if bits == 16 else 0.02), error  # measured: ~3e-5 (16 bits), ~0.6 % (8 bits)


@needs_native
def test_int4_kernel_choice_and_errors() -> None:
    huge = nn.Linear(128, 32)
    with torch.no_grad():
        huge.weight[0, 0] = 1e5  # beyond float16, the native kernel's scale format
    with pytest.raises(RuntimeError, match="int4 kernel 'native' cannot run this layer: weights beyond"):
        Int4Linear(huge, kernel="native")
    with pytest.warns(UserWarning, match="torch's slower packed kernel: weights beyond float16"):
        assert Int4Linear(huge, kernel="auto").kernel == "torch"
    assert Int4Linear(nn.Linear(128, 32)).kernel == "native"
    with pytest.raises(ValueError, match="int4 kernel must be one of auto, native, torch; got 'fast'"):
        Int4Linear(nn.Linear(128, 32), kernel="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="activation_bits must be 8 or 16, got 4"):
        Int4Linear(nn.Linear(128, 32), activation_bits=4)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="inference-only"):
        Int4Linear(nn.Linear(128, 32))(torch.randn(2, 128, requires_grad=True))


def test_int4_width_must_fit_the_group() -> None:
    with pytest.raises(ValueError, match=r"in_features \(100\) divisible by group_size \(32"):
        Int4Linear(nn.Linear(100, 16))
    with pytest.raises(ValueError, match=r"out_features \(40\) divisible by 16"):
        Int4Linear(nn.Linear(128, 40))
