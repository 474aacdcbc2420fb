"""Codebook patterns on hand-computed tiny examples (``_`` = special id 9 in the comments)."""

from __future__ import annotations

import pytest
import torch

from stylecond.lm.patterns import DelayPattern, ParallelPattern

SP = 9


def test_delay_pattern_k2_t3_by_hand() -> None:
    pat = DelayPattern().bind(2)
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6]]])
    seq, mask = pat.build(codes, SP)
    # k=0: _ 1 2 3 _   /   k=1: _ _ 4 5 6
    assert seq.tolist() == [[[SP, 1, 2, 3, SP], [SP, SP, 4, 5, 6]]]
    assert mask.tolist() == [[False, True, True, True, False], [False, False, True, True, True]]
    assert pat.num_steps(3) == 5 and pat.num_frames(5) == 3


def test_delay_pattern_k4_matches_musicgen_layout() -> None:
    """MusicGen: S = T + K - 1 + 1 (initial step); code (k, t) at step t + k + 1."""
    pat = DelayPattern().bind(4)
    t = 6
    codes = torch.arange(4 * t).view(1, 4, t)
    seq, mask = pat.build(codes, 99)
    assert seq.shape == (1, 4, t + 4)
    assert (seq[0, :, 0] == 99).all()  # the all-special initial step
    for k in range(4):
        row = seq[0, k].tolist()
        assert row[: k + 1] == [99] * (k + 1)
        assert row[k + 1 : k + 1 + t] == codes[0, k].tolist()
        assert row[k + 1 + t :] == [99] * (3 - k)
    assert int(mask.sum()) == 4 * t


def test_custom_delays_and_parallel() -> None:
    pat = DelayPattern(delays=[0, 2])
    seq, _ = pat.build(torch.tensor([[[1, 2], [3, 4]]]), SP)
    assert seq.tolist() == [[[SP, 1, 2, SP, SP], [SP, SP, SP, 3, 4]]]
    par = ParallelPattern().bind(2)
    seq, mask = par.build(torch.tensor([[[1, 2], [3, 4]]]), SP)
    assert seq.tolist() == [[[SP, 1, 2], [SP, 3, 4]]]
    assert par.num_steps(2) == 3 and mask[:, 0].tolist() == [False, False]


@pytest.mark.parametrize("pattern", [DelayPattern(), ParallelPattern(), DelayPattern(delays=[1, 0, 3])])
def test_revert_codes_roundtrip(pattern: DelayPattern) -> None:
    pat = pattern.bind(3)
    codes = torch.randint(0, 8, (2, 3, 5))
    seq, _ = pat.build(codes, SP)
    back, mask = pat.revert_codes(seq)
    assert torch.equal(back, codes) and mask.all()


def test_revert_logits_shift_by_one_by_hand() -> None:
    """Logits at step s predict step s+1: code (k, t) at step t+k+1 takes the logits of step t+k."""
    pat = DelayPattern().bind(2)
    s = pat.num_steps(3)  # 5
    logits = torch.arange(s, dtype=torch.float32).view(1, 1, s, 1).expand(1, 2, s, 2)
    out, mask = pat.revert(logits)
    assert out[0, :, :, 0].tolist() == [[0, 1, 2], [1, 2, 3]]
    assert mask.all()
    # a truncated model output (only S - 1 = 4 steps, as MusicLM.forward uses) still covers everything
    out, mask = pat.revert(logits[:, :, :4], num_frames=3)
    assert mask.all() and out[0, :, :, 0].tolist() == [[0, 1, 2], [1, 2, 3]]
    # only 3 steps: (k=1, t=2) would need step 3 -> masked and zeroed
    out, mask = pat.revert(logits[:, :, :3], num_frames=3)
    assert mask.tolist() == [[True, True, True], [True, True, False]]
    assert out[0, 1, 2].tolist() == [0.0, 0.0]


def test_layout_mask_and_positions() -> None:
    pat = DelayPattern().bind(3)
    assert pat.positions(2).tolist() == [[1, 2], [2, 3], [3, 4]]
    assert pat.layout_mask(2).int().tolist() == [[0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="bind"):
        DelayPattern().num_steps(3)
    with pytest.raises(ValueError, match="delays"):
        DelayPattern(delays=[0, -1])
    with pytest.raises(ValueError, match="K=3"):
        DelayPattern(delays=[0, 1]).bind(3)
    with pytest.raises(ValueError, match="K=3"):
        ParallelPattern(num_codebooks=2).bind(3)
    with pytest.raises(ValueError, match="codes"):
        DelayPattern().bind(3).build(torch.zeros(1, 2, 4, dtype=torch.long), SP)
    with pytest.raises(ValueError, match="num_frames"):
        DelayPattern().bind(3).positions(-1)
