"""The native decoding kernels beyond the plain int4 linear: the decode self-attention (cache write +
attention, float32 and bfloat16 caches) against SDPA in float64, and the linear's fused layer norm, GELU
and residual against torch's modules, on the machine's build and on the AVX2 build."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylecond.kernels import native
from stylecond.lm.lowbit_linear import Int4Linear
from tests.support.int4 import native_reference, needs_native


def _builds(tmp_path_factory: pytest.TempPathFactory) -> list[native.NativeKernels]:
    """This machine's kernel, and the AVX2 one (-march=haswell) where the compiler can build it."""
    libs = [native.load()[0]]
    path, _ = native.build(march="haswell", directory=tmp_path_factory.mktemp("haswell"))
    if path is not None:
        libs.append(native.open_library(path))
    return [lib for lib in libs if lib is not None]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> list[native.NativeKernels]:
    return _builds(tmp_path_factory)


def _attention_reference(qkv, keys, values, pos, valid, heads):  # type: ignore[no-untyped-def]
    b, width = qkv.shape[0], qkv.shape[1] // 3
    q, k, v = qkv.view(b, 3, heads, width // heads).unbind(1)
    keys, values = keys.clone(), values.clone()
    keys[:, :, pos], values[:, :, pos] = k.to(keys.dtype), v.to(values.dtype)
    mask = torch.ones(b, pos + 1, dtype=torch.bool) if valid is None else valid[:, : pos + 1].clone()
    mask[:, pos] = True  # the new position always sees itself
    out = F.scaled_dot_product_attention(
        q[:, :, None].double(), keys[:, :, : pos + 1].double(), values[:, :, : pos + 1].double(),
        attn_mask=mask[:, None, None, :],
    )  # fmt: skip
    return out.reshape(b, width).float(), keys, values


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("pos", [0, 17, 63])
@pytest.mark.parametrize("masked", [False, True])
def test_decode_attention_writes_the_cache_and_matches_sdpa(builds, dtype, pos, masked) -> None:
    torch.manual_seed(pos)
    b, heads, head_dim, max_len = 3, 4, 32, 64
    qkv = torch.randn(b, 3 * heads * head_dim) * 2
    valid = (torch.rand(b, max_len) > 0.4) if masked else None
    for lib in builds:
        keys = torch.randn(b, heads, max_len, head_dim).to(dtype)
        values = torch.randn(b, heads, max_len, head_dim).to(dtype)
        want, want_keys, want_values = _attention_reference(qkv, keys, values, pos, valid, heads)
        got = lib.decode_attention(qkv, keys, values, pos, valid, heads)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        assert torch.equal(keys, want_keys) and torch.equal(values, want_values), lib.isa


@needs_native
def test_decode_attention_rejects_what_it_cannot_read() -> None:
    lib = native.load()[0]
    assert lib is not None
    qkv, keys = torch.randn(2, 3 * 64), torch.zeros(2, 2, 8, 32)
    with pytest.raises(ValueError, match="pos=8"):
        lib.decode_attention(qkv, keys, keys.clone(), 8, None, 2)
    with pytest.raises(ValueError, match="keys/values must be"):
        lib.decode_attention(qkv, keys[:1], keys[:1].clone(), 0, None, 2)
    with pytest.raises(ValueError, match="qkv must be"):
        lib.decode_attention(qkv.double(), keys, keys.clone(), 0, None, 2)
    with pytest.raises(ValueError, match="valid must be bool"):
        lib.decode_attention(qkv, keys, keys.clone(), 5, torch.ones(2, 4, dtype=torch.bool), 2)


@needs_native
@pytest.mark.parametrize("bits", [16, 8])
def test_int4_linear_fused_norm_gelu_and_residual_match_torch(builds, bits) -> None:
    torch.manual_seed(bits)
    layer = Int4Linear(nn.Linear(256, 64), group_size=64, kernel="native", activation_bits=bits)  # type: ignore[arg-type]
    norm = nn.LayerNorm(256)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    x, residual = torch.randn(5, 256) * 3 + 1, torch.randn(5, 64)
    buffers = layer.get_buffer("packed"), layer.get_buffer("scale"), layer.get_buffer("low")
    with torch.no_grad():
        normed = norm(x)
        for lib in builds:
            spec = (norm.weight.detach(), norm.bias.detach(), norm.eps)
            got = lib.linear(normed, *buffers, 64, layer.bias, bits == 16, gelu=True, residual=residual)
            want = F.gelu(native_reference(normed, layer, bits)) + residual
            torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)
            # the fused norm quantizes its own normalized rows: equal to torch's norm to float32 rounding,
            # which can move an activation by one quantization level (~1e-4 of the output scale)
            got = lib.linear(x, *buffers, 64, layer.bias, bits == 16, norm=spec)
            want = native_reference(normed, layer, bits)
            torch.testing.assert_close(got, want, rtol=0, atol=2e-3 * float(want.abs().max()))
            with pytest.raises(ValueError, match="residual must be"):
                lib.linear(x, *buffers, 64, layer.bias, residual=residual[:4])


@needs_native
def test_gelu_epilogue_is_the_exact_gelu_over_its_range(builds) -> None:
    """A zero weight isolates the epilogue (y = bias): GELU(x) for x across [-12, 12] to 2e-7 of
    max(1, |x|)."""
    n = 64
    q = torch.zeros(n, n, dtype=torch.uint8)
    packed, scale, low = native.pack(q, torch.ones(n, 1), torch.zeros(n, 1))
    x = torch.linspace(-12, 12, 4 * n).view(4, n)
    for lib in builds:
        for row in x:
            got = lib.linear(torch.zeros(1, n), packed, scale, low, n, row.contiguous(), gelu=True)
            want = F.gelu(row.double()).float()
            assert float(((got[0] - want).abs() / row.abs().clamp(min=1)).max()) < 2e-7, lib.isa
