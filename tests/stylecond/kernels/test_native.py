"""The native CPU kernel's build and layout: cached builds, the AVX2 path (built for a CPU without AVX-512)
computing the same as the reference, and pack/unpack of the interleaved int4 layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stylecond.kernels import native
from stylecond.lm.lowbit_linear import Int4Linear
from tests.support.int4 import native_reference, needs_native


@needs_native
def test_int4_native_kernel_avx2_path_matches_the_reference(tmp_path) -> None:
    path, reason = native.build(march="haswell", directory=tmp_path)  # AVX2 + FMA + F16C, no AVX-512
    if path is None:
        pytest.skip(reason)
    lib = native.open_library(path)
    assert lib.isa == 256
    torch.manual_seed(0)
    q = Int4Linear(nn.Linear(256, 32), group_size=64, kernel="native")
    x = torch.randn(5, 256)
    buffers = q.get_buffer("packed"), q.get_buffer("scale"), q.get_buffer("low")
    with torch.no_grad():
        for bits in (16, 8):
            got = lib.linear(x, *buffers, 64, q.bias, bits == 16)
            torch.testing.assert_close(got, native_reference(x, q, bits), rtol=1e-5, atol=1e-5)


@needs_native
def test_int4_native_build_is_cached_and_pack_round_trips(tmp_path) -> None:
    first, _ = native.build(directory=tmp_path)
    again, _ = native.build(directory=tmp_path)
    assert first is not None and first == again and len(list(tmp_path.iterdir())) == 1
    q = torch.randint(0, 16, (32, 64))
    scale, low = torch.rand(32, 2) + 0.5, torch.randn(32, 2)
    weight = native.unpack(*native.pack(q, scale, low))
    want = q.float().view(32, 2, 32) * scale.half().float()[..., None] + low.half().float()[..., None]
    assert torch.equal(weight, want.view(32, 64))


def test_unbuildable_machines_get_a_reason(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(native.platform, "machine", lambda: "aarch64")
    assert native.build(directory=tmp_path) == (
        None,
        "the int4 kernel is x86-64 only (this machine: aarch64)",
    )
    monkeypatch.undo()
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    path, reason = native.build(directory=tmp_path)
    assert path is None and "no-such-compiler" in reason
