from __future__ import annotations

import pytest
import torch

from stylecond.generation.sampling import sample_next


def test_greedy_is_argmax_and_shape() -> None:
    logits = torch.randn(2, 4, 3, 11)
    out = sample_next(logits, temperature=0.0)
    assert out.shape == (2, 4, 3) and out.dtype == torch.long
    assert torch.equal(out, logits.argmax(-1))


def test_top_k_one_is_argmax() -> None:
    logits = torch.randn(5, 9)
    assert torch.equal(sample_next(logits, top_k=1), logits.argmax(-1))


def test_top_k_restricts_support() -> None:
    logits = torch.zeros(1, 10)
    logits[0, [2, 7]] = 1.0  # the two largest; the other 8 are tied far below only by a small margin
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(2000, 10), top_k=2, generator=g)
    assert set(draws.tolist()) == {2, 7}


def test_top_p_restricts_support() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(3000, 4)
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits, top_k=0, top_p=0.75, generator=g)
    # 0.5 < 0.75 <= 0.8: the nucleus is {0, 1}
    assert set(draws.tolist()) == {0, 1}
    frac0 = (draws == 0).float().mean().item()
    assert abs(frac0 - 0.5 / 0.8) < 0.05


def test_full_sampling_matches_distribution() -> None:
    probs = torch.tensor([0.6, 0.3, 0.1])
    g = torch.Generator().manual_seed(0)
    draws = sample_next(probs.log().expand(6000, 3), top_k=0, generator=g)
    freq = torch.bincount(draws, minlength=3).float() / draws.numel()
    torch.testing.assert_close(freq, probs, atol=0.03, rtol=0)


def test_temperature_sharpens() -> None:
    logits = torch.tensor([1.0, 0.0]).expand(4000, 2)
    g = torch.Generator().manual_seed(0)
    hot = (sample_next(logits, temperature=4.0, generator=g) == 0).float().mean()
    cold = (sample_next(logits, temperature=0.25, generator=g) == 0).float().mean()
    assert cold > 0.95 > hot


def test_generator_reproducible_and_bf16() -> None:
    logits = torch.randn(3, 4, 50).bfloat16()
    a = sample_next(logits, top_k=10, generator=torch.Generator().manual_seed(3))
    b = sample_next(logits, top_k=10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (3, 4)
    assert int(a.max()) < 50 and int(a.min()) >= 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": -0.1}, "top_p"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
    ],
)
def test_bad_args_raise(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        sample_next(torch.randn(2, 5), **kwargs)


def test_bad_logits_raise() -> None:
    with pytest.raises(ValueError, match="logits"):
        sample_next(torch.zeros(2, 5, dtype=torch.long))
