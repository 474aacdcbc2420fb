from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

import stylecond.generation.generate as gen
from stylecond.conditioners.fuser import ConditionFuser
from stylecond.conditioners.types import ConditionTensors
from stylecond.generation.generate import generate_codes, generate_long, stream_codes, stream_long_codes
from stylecond.generation.sampler import DoubleCFGSampler
from stylecond.generation.settings import SamplingSettings
from stylecond.lm.music_lm import MusicLM

K, CARD, DIM = 3, 17, 32


@pytest.fixture(scope="module")
def lm() -> MusicLM:
    torch.manual_seed(0)
    return MusicLM(num_codebooks=K, card=CARD, dim=DIM, num_heads=4, num_layers=2).eval()


def conditions(b: int = 2, text: bool = True, style: bool = True) -> dict[str, ConditionTensors]:
    g = torch.Generator().manual_seed(1)
    out = {}
    if text:
        mask = torch.ones(b, 4, dtype=torch.bool)
        mask[0, 3] = False  # some padding
        out["text"] = ConditionTensors(torch.randn(b, 4, DIM, generator=g), mask)
    if style:
        out["style"] = ConditionTensors(
            torch.randn(b, 3, DIM, generator=g), torch.ones(b, 3, dtype=torch.bool)
        )
    return out


def greedy_reference(
    lm: MusicLM, conds: dict, sampler: DoubleCFGSampler, t: int, prompt: Tensor | None = None
) -> Tensor:
    """Greedy decoding by a full forward over the whole sequence at every step (no cache)."""
    stacked, n = sampler.guidance_conditions(conds)
    prefix = ConditionFuser.all_prefix(list(stacked))(stacked).prefix
    b = next(iter(conds.values())).batch_size
    pat, sp = lm.pattern, lm.special_id
    s_total = pat.num_steps(t)
    lay = pat.layout_mask(t)
    p = 0 if prompt is None else prompt.shape[2]
    full = torch.zeros(b, K, t, dtype=torch.long)
    if prompt is not None:
        full[:, :, :p] = prompt
    template, _ = pat.build(full, sp)
    known = pat.build((torch.arange(t) < p).long().expand(1, K, t), 0)[0][0].bool()
    seq = torch.where(known, template, torch.full_like(template, sp))
    with torch.no_grad():
        for s in range(s_total - 1):
            logits = lm.forward_sequence(seq.repeat(n, 1, 1)[:, :, : s + 1], prefix=prefix)[:, :, s]
            tok = sampler.combine(logits, n).argmax(-1)
            new = torch.where(lay[:, s + 1], tok, sp)
            seq[:, :, s + 1] = torch.where(known[:, s + 1], seq[:, :, s + 1], new)
    return pat.revert_codes(seq, num_frames=t)[0]


def test_shapes_ranges_and_one_batched_forward_per_step(lm: MusicLM, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    orig = lm.step

    def spy(tokens: Tensor, state: Any) -> Tensor:
        calls.append((tokens.shape[0], tokens.shape[2]))
        return orig(tokens, state)

    monkeypatch.setattr(lm, "step", spy)
    progress: list[tuple[int, int]] = []
    codes = generate_codes(
        lm,
        conditions=conditions(),
        sampler=DoubleCFGSampler(SamplingSettings(top_k=5)),
        num_frames=9,
        generator=torch.Generator().manual_seed(0),
        progress=lambda d, n: progress.append((d, n)),
    )
    assert codes.shape == (2, K, 9) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < CARD
    s_total = lm.pattern.num_steps(9)
    assert calls == [(6, 1)] * (s_total - 1)
    assert progress[-1] == (s_total - 1, s_total - 1) and len(progress) == s_total - 1


@pytest.mark.parametrize(
    ("beta", "text", "style"), [(5.0, True, True), (None, True, True), (3.0, False, True)]
)
def test_greedy_cached_equals_full_forward(lm: MusicLM, beta: float | None, text: bool, style: bool) -> None:
    conds = conditions(text=text, style=style)
    sampler = DoubleCFGSampler(SamplingSettings(cfg_coef=3.0, cfg_coef_beta=beta, temperature=0.0))
    cached = generate_codes(lm, conditions=conds, sampler=sampler, num_frames=7)
    assert torch.equal(cached, greedy_reference(lm, conds, sampler, 7))


def test_prompt_preserved_and_greedy_continuation_matches(lm: MusicLM) -> None:
    conds = conditions()
    prompt = torch.randint(0, CARD, (2, K, 4))
    sampler = DoubleCFGSampler(SamplingSettings(temperature=0.0))
    codes = generate_codes(lm, conditions=conds, sampler=sampler, num_frames=8, prompt_codes=prompt)
    assert torch.equal(codes[:, :, :4], prompt)
    assert torch.equal(codes, greedy_reference(lm, conds, sampler, 8, prompt))
    sampled = generate_codes(
        lm, conditions=conds, sampler=DoubleCFGSampler(), num_frames=6, prompt_codes=prompt
    )
    assert torch.equal(sampled[:, :, :4], prompt)
    whole = generate_codes(lm, conditions=conds, sampler=sampler, num_frames=4, prompt_codes=prompt)
    assert torch.equal(whole, prompt)


def test_unconditional_batch_size(lm: MusicLM) -> None:
    codes = generate_codes(lm, conditions=None, sampler=DoubleCFGSampler(), num_frames=3, batch_size=4)
    assert codes.shape == (4, K, 3)


def test_bad_inputs(lm: MusicLM) -> None:
    sampler = DoubleCFGSampler()
    with pytest.raises(ValueError, match="num_frames"):
        generate_codes(lm, conditions=conditions(), sampler=sampler, num_frames=0)
    with pytest.raises(ValueError, match="prompt_codes"):
        bad = torch.full((2, K, 2), CARD)
        generate_codes(lm, conditions=conditions(), sampler=sampler, num_frames=4, prompt_codes=bad)
    with pytest.raises(ValueError, match="prompt_codes"):
        generate_codes(
            lm, conditions=conditions(), sampler=sampler, num_frames=4, prompt_codes=-torch.ones(2, K, 2)
        )
    with pytest.raises(ValueError, match="prompt_codes"):
        generate_codes(
            lm, conditions=conditions(b=3), sampler=sampler, num_frames=4, prompt_codes=torch.zeros(2, K, 2)
        )
    with pytest.raises(ValueError, match="stride_frames"):
        generate_long(
            lm, conditions_fn=lambda i: None, sampler=sampler, num_frames=9, window_frames=4, stride_frames=5
        )
    with pytest.raises(ValueError, match="num_frames"):
        generate_long(
            lm, conditions_fn=lambda i: None, sampler=sampler, num_frames=-1, window_frames=4, stride_frames=2
        )


def test_generate_long_windows_and_conditions_fn(lm: MusicLM, monkeypatch: pytest.MonkeyPatch) -> None:
    seen_windows: list[int] = []
    prompts: list[Tensor | None] = []
    lengths: list[int] = []
    orig = gen.stream_codes

    def spy(*args: Any, **kwargs: Any) -> Any:
        prompts.append(kwargs["prompt_codes"])
        lengths.append(kwargs["num_frames"])
        return orig(*args, **kwargs)

    monkeypatch.setattr(gen, "stream_codes", spy)

    def conditions_fn(index: int) -> dict[str, ConditionTensors]:
        seen_windows.append(index)
        return conditions()

    first_prompt = torch.randint(0, CARD, (2, K, 2))
    out = generate_long(
        lm,
        conditions_fn=conditions_fn,
        sampler=DoubleCFGSampler(),
        num_frames=20,
        window_frames=8,
        stride_frames=5,
        prompt_codes=first_prompt,
    )
    assert out.shape == (2, K, 20)
    assert int(out.min()) >= 0 and int(out.max()) < CARD
    assert torch.equal(out[:, :, :2], first_prompt)
    # windows: 8 frames, then +5 -> 13, +5 -> 18, +2 -> 20 (context 3 frames each time)
    assert seen_windows == [0, 1, 2, 3]
    assert lengths == [8, 8, 8, 5]
    assert prompts[0] is first_prompt
    for i, end in zip(range(1, 4), (8, 13, 18)):
        p = prompts[i]
        assert p is not None and torch.equal(p, out[:, :, end - 3 : end])


@pytest.mark.parametrize("prompt_frames", [0, 3])
def test_streamed_chunks_are_the_generated_codes(lm: MusicLM, prompt_frames: int) -> None:
    prompt = torch.randint(0, CARD, (2, K, prompt_frames), generator=torch.Generator().manual_seed(2))
    args: dict[str, Any] = dict(conditions=conditions(), sampler=DoubleCFGSampler(), num_frames=11,
                                prompt_codes=prompt if prompt_frames else None)  # fmt: skip
    whole = generate_codes(lm, **args, generator=torch.Generator().manual_seed(0))
    chunks = list(stream_codes(lm, **args, chunk_frames=3, generator=torch.Generator().manual_seed(0)))
    assert [c.shape[2] for c in chunks][:-1] == [3] * (len(chunks) - 1) and chunks[-1].shape[2] <= 3
    assert torch.equal(torch.cat(chunks, dim=2), whole[:, :, prompt_frames:])


def test_streamed_windows_are_the_long_generation(lm: MusicLM) -> None:
    args: dict[str, Any] = dict(conditions_fn=lambda i: conditions(), sampler=DoubleCFGSampler(), num_frames=20,
                                window_frames=8, stride_frames=5)  # fmt: skip
    whole = generate_long(lm, **args, generator=torch.Generator().manual_seed(0))
    chunks = list(stream_long_codes(lm, **args, chunk_frames=2, generator=torch.Generator().manual_seed(0)))
    assert max(c.shape[2] for c in chunks) <= 2
    assert torch.equal(torch.cat(chunks, dim=2), whole)
