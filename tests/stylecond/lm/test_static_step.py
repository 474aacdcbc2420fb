"""The fixed-shape decoding step (CUDA graphs on a GPU): the same logits as the cached forward, on the CPU
eagerly; captured and replayed on CUDA where a GPU exists."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from stylecond.conditioners.types import ConditionTensors
from stylecond.generation.generate import generate_codes
from stylecond.generation.sampler import DoubleCFGSampler
from stylecond.generation.settings import SamplingSettings
from stylecond.lm.music_lm import MusicLM
from stylecond.lm.static_step import StaticStep

K, CARD, D = 3, 13, 32


def _lm(**kw: Any) -> MusicLM:
    return MusicLM(num_codebooks=K, card=CARD, dim=D, num_heads=4, num_layers=2, **kw).eval()


def _conditions(b: int) -> tuple[ConditionTensors, ConditionTensors]:
    pmask = torch.ones(b, 4, dtype=torch.bool)
    pmask[0, 1] = False  # a padded prefix token
    pmask[b - 1] = False  # a null prefix (its rows are not prefilled)
    cmask = torch.ones(b, 5, dtype=torch.bool)
    cmask[0, 3:] = False
    cmask[b - 1] = False  # a null cross condition
    return ConditionTensors(torch.randn(b, 4, D), pmask), ConditionTensors(torch.randn(b, 5, 24), cmask)


@pytest.mark.parametrize("kv_dtype", [None, torch.bfloat16])
@pytest.mark.parametrize("use_cross", [False, True])
def test_static_step_matches_cached_forward(use_cross: bool, kv_dtype: torch.dtype | None) -> None:
    """Across span buckets (bucket 4), after a prompt prefill, with padded and null prefix rows, garbage in
    the unwritten cache (it must be zeroed) and a bfloat16 cache."""
    torch.manual_seed(0)
    lm = _lm(cross_attention=use_cross, cross_dim=24)
    b, steps = 3, 14
    prefix, cross = _conditions(b)
    kw: dict[str, Any] = dict(prefix=prefix, cross=cross if use_cross else None, kv_dtype=kv_dtype)
    seq = torch.randint(0, CARD + 1, (b, K, steps))
    ref_state, state = lm.init_state(b, steps, **kw), lm.init_state(b, steps, **kw)
    state.cache.keys[:, :, :, state.cache.length :] = float("nan")  # uninitialised memory may hold NaN
    state.static_step = lm.make_static_step(state, cuda_graphs=False, bucket=4)
    torch.testing.assert_close(lm.step(seq[:, :, :2], state), lm.step(seq[:, :, :2], ref_state))
    tol = dict(atol=1e-5, rtol=0) if kv_dtype is None else dict(atol=2e-2, rtol=2e-2)
    for i in range(2, steps):
        out = lm.step(seq[:, :, i : i + 1], state)
        torch.testing.assert_close(out, lm.step(seq[:, :, i : i + 1], ref_state), **tol)
        assert state.offset == ref_state.offset == i + 1
    assert {state.static_step.span(p) for p in range(4 + steps)} == {4, 8, 12, 16, 4 + steps}
    torch.testing.assert_close(state.cache.keys, ref_state.cache.keys, **tol)
    with pytest.raises(ValueError, match="max_steps"):
        lm.step(seq[:, :, :1], state)


def test_static_step_errors() -> None:
    lm = _lm()
    state = lm.init_state(2, 3)
    assert state.static_step is None  # the CPU keeps its eager (and native) step by default
    with pytest.raises(
        ValueError, match="cuda_graph=True needs the model whole on a CUDA device; it is on cpu"
    ):
        lm.init_state(2, 3, cuda_graph=True)
    with pytest.raises(ValueError, match="CUDA graphs need a KV cache on a CUDA device"):
        lm.make_static_step(state, cuda_graphs=True)
    with pytest.raises(ValueError, match="bucket"):
        lm.make_static_step(state, cuda_graphs=False, bucket=0)
    step = lm.make_static_step(state, cuda_graphs=False)
    with pytest.raises(ValueError, match=r"tokens must be \(2, 3, 1\)"):
        step(torch.zeros(1, K, 1, dtype=torch.long))
    for _ in range(3):
        step(torch.zeros(2, K, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="KV cache full"):
        step(torch.zeros(2, K, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="span"):
        lm.transformer.static_step(torch.zeros(2, 1, D), state.cache, torch.zeros(1, dtype=torch.long), 4)


def test_graph_capture_is_cuda_only() -> None:
    lm = _lm()
    state = lm.init_state(1, 2)
    with pytest.raises(ValueError, match="on cpu"):
        StaticStep(lambda t, p, s: t, state.cache, num_codebooks=K, cuda_graphs=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_generation_matches_eager() -> None:
    """On a GPU: generate_codes replays captured graphs (several buckets) and gives the eager tokens."""
    torch.manual_seed(0)
    lm = _lm().cuda()
    conditions = {name: ConditionTensors(torch.randn(2, 4, D, device="cuda"), torch.ones(2, 4, dtype=torch.bool,
                                         device="cuda")) for name in ("style", "text")}  # fmt: skip
    sampler = DoubleCFGSampler(SamplingSettings(temperature=0.0))
    runs = []
    for graphs in (False, True):
        runs.append(generate_codes(lm, conditions=conditions, sampler=sampler, num_frames=300,
                                   cuda_graph=graphs))  # fmt: skip
    assert torch.equal(runs[0], runs[1])
    state = lm.init_state(2, 300)
    assert isinstance(state.static_step, StaticStep)
    for _ in range(300):
        lm.step(torch.zeros(2, K, 1, dtype=torch.long, device="cuda"), state)
    assert state.static_step.cuda_graphs and len(state.static_step.graphs) == 2
