"""The native decoding step (:mod:`stylecond.layers.native_step`) and the native decode attention of
``SelfAttention``: the same logits as the layers run op by op in torch, with and without cross-attention,
masked prefixes and bfloat16 caches; used exactly where it applies."""

from __future__ import annotations

import pytest
import torch

from stylecond.conditioners.types import ConditionTensors
from stylecond.layers.attention import SelfAttention
from stylecond.layers.native_step import NativeStep
from stylecond.layers.transformer import Transformer
from stylecond.lm.music_lm import DecodeState, MusicLM
from stylecond.lm.quantize import quantize
from tests.support.int4 import needs_native


def _decode(
    lm: MusicLM, monkeypatch, *, step: bool, attention: bool, kv_dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, DecodeState, list[int]]:  # type: ignore[no-untyped-def]
    """Logits of a 3-position prompt then 9 single positions (masked prefix rows, cross conditions when
    the model has cross-attention), the state, and the query lengths of the SDPA calls made. ``step`` /
    ``attention``: allow the native step / the native decode attention."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    queries: list[int] = []
    with monkeypatch.context() as patch:
        if not step:
            patch.setattr(Transformer, "_native_step", lambda self, x, cache: None)
        if not attention:
            patch.setattr(SelfAttention, "_native_step", lambda self, x, past, start, mask: None)
        patch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                      lambda q, *a, **k: queries.append(q.shape[2]) or sdpa(q, *a, **k))  # fmt: skip
        g = torch.Generator().manual_seed(0)
        b, p = 3, 7
        valid = torch.tensor([[True] * p, [True] * 3 + [False] * 4, [False] * p])
        prefix = ConditionTensors(torch.randn(b, p, lm.dim, generator=g), valid)
        cross = None
        if lm.has_cross_attention:
            mask = torch.tensor([[True] * 5, [True, True, False, False, False], [False] * 5])
            cross = ConditionTensors(torch.randn(b, 5, lm.dim, generator=g), mask)
        tokens = torch.randint(0, lm.card + 1, (b, lm.num_codebooks, 12), generator=g)
        state = lm.init_state(b, 12, prefix=prefix, cross=cross, kv_dtype=kv_dtype)
        logits = [lm.step(tokens[:, :, :3], state)]
        logits += [lm.step(tokens[:, :, i : i + 1], state) for i in range(3, 12)]
    return torch.stack(logits), state, queries


def _lm(*, cross: bool, seed: int = 0) -> MusicLM:
    torch.manual_seed(seed)
    return MusicLM(num_codebooks=2, card=64, dim=64, num_heads=2, num_layers=3, cross_attention=cross).eval()


@needs_native
@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("kv_dtype", [None, torch.bfloat16])
def test_native_step_matches_the_layers_run_in_torch(cross, kv_dtype, monkeypatch) -> None:
    lm = quantize(_lm(cross=cross), "int4", group_size=32, kv_cache_dtype=None)
    got, state, queries = _decode(lm, monkeypatch, step=True, attention=True, kv_dtype=kv_dtype)
    assert isinstance(state.cache.native_step, NativeStep) and 1 not in queries  # no SDPA per position
    want, state, _ = _decode(lm, monkeypatch, step=False, attention=False, kv_dtype=kv_dtype)
    assert state.cache.native_step is None
    # the int4 kernel quantizes activations: float32 rounding differences between the paths (the fused
    # layer norm, a float32 instead of a bfloat16 softmax) can move an activation by one level
    tol = 2e-2 if kv_dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(got, want, rtol=0, atol=tol * float(want.abs().max()))
    assert got.argmax(-1).eq(want.argmax(-1)).float().mean() > 0.9


@needs_native
@pytest.mark.parametrize("cross", [False, True])
def test_float_models_attend_on_the_native_kernel_with_sdpa_results(cross, monkeypatch) -> None:
    """Unquantized float32 models keep torch's linears (no native step) but their single positions attend
    on the native kernel: the same logits as SDPA to float32 rounding."""
    lm = _lm(cross=cross, seed=1)
    got, state, queries = _decode(lm, monkeypatch, step=True, attention=True)
    assert state.cache.native_step is False
    want, _, torch_queries = _decode(lm, monkeypatch, step=True, attention=False)
    assert queries.count(1) == (9 * 3 if cross else 0) and torch_queries.count(1) == 9 * 3 * (
        2 if cross else 1
    )
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_native
def test_native_step_is_built_only_for_native_int4_linears(monkeypatch) -> None:
    lm = _lm(cross=False)
    for kernel, built in (("torch", False), ("native", True)):
        q = quantize(lm, "int4", group_size=32, kernel=kernel)  # type: ignore[arg-type]
        _, state, _ = _decode(q, monkeypatch, step=True, attention=True)
        assert isinstance(state.cache.native_step, NativeStep) is built
        if built:  # the plan's pointers are sized for the cache: another batch is an error, not a bad read
            with pytest.raises(ValueError, match=r"x must be \[B=3, D=64\]"):
                state.cache.native_step(torch.zeros(2, 64), 11)
        with pytest.raises(ValueError, match="max_steps=12"):
            q.step(torch.zeros(3, 2, 1, dtype=torch.long), state)
