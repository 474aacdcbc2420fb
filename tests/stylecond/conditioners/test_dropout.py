"""ConditioningDropout rates and determinism, and word_dropout."""

from __future__ import annotations

import pytest
import torch

from stylecond.conditioners.dropout import ConditioningDropout, word_dropout


def _rates(keep: dict[str, torch.Tensor]) -> dict[str, float]:
    t, s = keep["text"], keep["style"]
    return {
        "both": (t & s).float().mean().item(),
        "style_only": (~t & s).float().mean().item(),
        "text_only": (t & ~s).float().mean().item(),
        "none": (~t & ~s).float().mean().item(),
    }


EXPECTED = {"both": 0.324, "style_only": 0.216, "text_only": 0.216, "none": 0.244}


def test_per_sample_rates_match_the_paper() -> None:
    drop = ConditioningDropout().train()
    # one fixed draw of 10 000 samples (the binomial std is ~0.0045, so 1 % is ~2.2 sigma) ...
    rates = _rates(drop(10_000, step=0))
    for name, value in EXPECTED.items():
        assert abs(rates[name] - value) < 0.01, (name, rates[name])
    # ... and 200 000 samples over 20 steps, where 0.5 % is > 4 sigma
    draws = [drop(10_000, step=step) for step in range(1, 21)]
    rates = _rates({n: torch.cat([d[n] for d in draws]) for n in ("text", "style")})
    for name, value in EXPECTED.items():
        assert abs(rates[name] - value) < 0.005, (name, rates[name])


def test_per_batch_rates_and_uniform_batches() -> None:
    drop = ConditioningDropout(per_sample=False).train()
    draws = [drop(4, step=step) for step in range(10_000)]
    for keep in draws[:50]:
        assert keep["text"].unique().numel() == 1 and keep["style"].unique().numel() == 1
    rates = _rates({n: torch.stack([d[n][0] for d in draws]) for n in ("text", "style")})
    for name, value in EXPECTED.items():
        assert abs(rates[name] - value) < 0.01, (name, rates[name])


def test_same_seed_and_step_same_decisions() -> None:
    a = ConditioningDropout(seed=7).train()
    b = ConditioningDropout(seed=7).train()
    torch.manual_seed(123)  # the global RNG must not matter
    x = a(64, step=11)
    torch.manual_seed(456)
    y = b(64, step=11)
    assert all(torch.equal(x[n], y[n]) for n in ("text", "style"))
    z = a(64, step=12)
    w = ConditioningDropout(seed=8).train()(64, step=11)
    assert not torch.equal(x["text"], z["text"]) or not torch.equal(x["style"], z["style"])
    assert not torch.equal(x["text"], w["text"]) or not torch.equal(x["style"], w["style"])


def test_eval_keeps_everything_and_shapes() -> None:
    drop = ConditioningDropout(p_all=1.0)
    keep = drop.eval()(5, step=0, device="cpu")
    assert keep["text"].shape == (5,) and keep["text"].dtype == torch.bool and keep["text"].all()
    assert keep["style"].all()
    dropped = drop.train()(5, step=0)
    assert not dropped["text"].any() and not dropped["style"].any()


@pytest.mark.parametrize("kwargs", [{"p_all": -0.1}, {"p_text": 1.5}, {"p_style": float("nan")}])
def test_bad_probabilities(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ConditioningDropout(**kwargs)  # type: ignore[arg-type]


def test_bad_batch_or_step() -> None:
    drop = ConditioningDropout().train()
    with pytest.raises(ValueError, match="batch_size"):
        drop(0, step=0)
    with pytest.raises(ValueError, match="step"):
        drop(2, step=-1)


def test_word_dropout() -> None:
    text = " ".join(f"w{i}" for i in range(1000))
    kept = word_dropout(text, 0.2, torch.Generator().manual_seed(0)).split()
    assert abs(len(kept) / 1000 - 0.8) < 0.05
    assert kept == [w for w in text.split() if w in set(kept)]  # order preserved
    assert word_dropout(text, 0.2, torch.Generator().manual_seed(0)) == " ".join(kept)
    assert word_dropout("a  b", 0.0) == "a  b"
    assert word_dropout("", 0.5) == ""
    with pytest.raises(ValueError, match="word dropout"):
        word_dropout("a", 1.0)
