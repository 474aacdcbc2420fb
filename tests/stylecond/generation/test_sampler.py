from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from stylecond.conditioners.types import ConditionTensors
from stylecond.generation.cfg import cfg, double_cfg
from stylecond.generation.sampler import DoubleCFGSampler
from stylecond.generation.settings import SamplingSettings

CARD = 13


class ToyModel(nn.Module):
    """A foreign model: pools every condition into a bias over the vocabulary, plus a token embedding."""

    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        self.emb = nn.Embedding(CARD, CARD)
        self.proj = nn.ModuleDict({"text": nn.Linear(dim, CARD), "style": nn.Linear(dim, CARD)})
        self.calls: list[int] = []

    def forward(self, tokens: Tensor, conditions: dict[str, ConditionTensors]) -> Tensor:
        self.calls.append(tokens.shape[0])
        out = self.emb(tokens[:, -1])  # [N, CARD]
        for name, cond in conditions.items():
            m = cond.mask.float()[..., None]
            pooled = (cond.embeddings * m).sum(1) / m.sum(1).clamp(min=1)
            out = out + self.proj[name](pooled) * cond.mask.any(1, keepdim=True)
        return out


def make_conditions(
    b: int = 2, with_text: bool = True, with_style: bool = True
) -> dict[str, ConditionTensors]:
    g = torch.Generator().manual_seed(5)
    conds = {}
    if with_text:
        conds["text"] = ConditionTensors(
            torch.randn(b, 4, 6, generator=g), torch.ones(b, 4, dtype=torch.bool)
        )
    if with_style:
        conds["style"] = ConditionTensors(
            torch.randn(b, 3, 6, generator=g), torch.ones(b, 3, dtype=torch.bool)
        )
    return conds


def capture_logits(model: ToyModel, sampler: DoubleCFGSampler, tokens: Tensor, conds: dict) -> Tensor:
    """Run step() with top_k=1 and return the guided logits it computed (via a wrapped combine)."""
    seen: list[Tensor] = []
    orig = sampler.combine

    def spy(logits: Tensor, n: int) -> Tensor:
        out = orig(logits, n)
        seen.append(out)
        return out

    setattr(sampler, "combine", spy)  # noqa: B010
    sampler.step(model, tokens, conds)
    return seen[0]


def test_double_cfg_three_branches_one_call_and_values() -> None:
    model = ToyModel()
    conds = make_conditions()
    tokens = torch.tensor([[1, 2], [3, 4]])
    sampler = DoubleCFGSampler(SamplingSettings(cfg_coef=3.0, cfg_coef_beta=5.0, temperature=0.0))
    guided = capture_logits(model, sampler, tokens, conds)
    assert model.calls == [6]
    with torch.no_grad():
        text, style = conds["text"], conds["style"]
        l_full = model(tokens, conds)
        l_style = model(tokens, {"text": text.null(), "style": style})
        l_null = model(tokens, {"text": text.null(), "style": style.null()})
    torch.testing.assert_close(guided, double_cfg(l_full, l_style, l_null, 3.0, 5.0))
    # and by hand for one entry
    by_hand = l_null + 3.0 * (l_style + 5.0 * (l_full - l_style) - l_null)
    torch.testing.assert_close(guided, by_hand)
    out = sampler.step(model, tokens, conds)
    assert torch.equal(out, by_hand.argmax(-1))


def test_beta_one_equals_plain_cfg() -> None:
    model = ToyModel()
    conds = make_conditions()
    tokens = torch.tensor([[1], [7]])
    with torch.no_grad():
        g_double = capture_logits(
            model, DoubleCFGSampler(SamplingSettings(cfg_coef=2.0, cfg_coef_beta=1.0)), tokens, conds
        )
        g_plain = capture_logits(
            model, DoubleCFGSampler(SamplingSettings(cfg_coef=2.0, cfg_coef_beta=None)), tokens, conds
        )
        expected = cfg(model(tokens, conds), model(tokens, {k: v.null() for k, v in conds.items()}), 2.0)
    torch.testing.assert_close(g_double, g_plain)
    torch.testing.assert_close(g_plain, expected)


@pytest.mark.parametrize(
    ("beta", "with_text", "with_style", "branches"),
    [
        (5.0, True, True, 3),
        (None, True, True, 2),
        (5.0, True, False, 2),
        (5.0, False, True, 2),
        (5.0, False, False, 1),
    ],
)
def test_fallback_paths(beta: float | None, with_text: bool, with_style: bool, branches: int) -> None:
    model = ToyModel()
    conds = make_conditions(b=3, with_text=with_text, with_style=with_style)
    sampler = DoubleCFGSampler(SamplingSettings(cfg_coef_beta=beta))
    stacked, n = sampler.guidance_conditions(conds)
    assert n == branches
    for name, c in stacked.items():
        assert c.batch_size == 3 * n
        assert torch.equal(c.embeddings[:3], conds[name].embeddings)
        assert not c.mask[-3:].any() and not c.embeddings[-3:].any()  # null branch last
    tokens = torch.randint(0, CARD, (3, 2))
    out = sampler.step(model, tokens, conds)
    assert model.calls == [3 * branches]
    assert out.shape == (3,) and int(out.max()) < CARD


def test_style_only_middle_branch() -> None:
    conds = make_conditions(b=2)
    stacked, n = DoubleCFGSampler().guidance_conditions(conds)
    assert n == 3
    assert torch.equal(stacked["style"].embeddings[2:4], conds["style"].embeddings)
    assert not stacked["text"].mask[2:4].any()


def test_combine_and_sample_pieces() -> None:
    sampler = DoubleCFGSampler(SamplingSettings(cfg_coef=3.0, cfg_coef_beta=5.0, temperature=0.0))
    logits = torch.randn(6, 4, CARD).bfloat16()
    guided = sampler.combine(logits, 3)
    assert guided.shape == (2, 4, CARD) and guided.dtype == torch.float32
    assert sampler.sample(guided).shape == (2, 4)
    with pytest.raises(ValueError, match="num_branches"):
        sampler.combine(torch.randn(5, CARD), 3)


def test_bad_inputs() -> None:
    conds = make_conditions(b=2)
    conds["style"] = ConditionTensors(torch.zeros(3, 2, 6), torch.ones(3, 2, dtype=torch.bool))
    sampler = DoubleCFGSampler()
    with pytest.raises(ValueError, match="conditions\\['style'\\]"):
        sampler.guidance_conditions(conds)
    with pytest.raises(ValueError, match="tokens"):
        sampler.step(ToyModel(), torch.zeros(5, 1, dtype=torch.long), make_conditions(b=2))
    with pytest.raises(ValueError, match="cfg_coef"):
        DoubleCFGSampler(SamplingSettings(cfg_coef="3"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cfg_coef_beta"):
        DoubleCFGSampler(SamplingSettings(cfg_coef_beta=True))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cfg_coef_beta"):
        DoubleCFGSampler(SamplingSettings(cfg_coef_beta=torch.tensor(5.0, requires_grad=True)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k"):
        DoubleCFGSampler(SamplingSettings(top_k=-3))
    with pytest.raises(ValueError, match="logits_fn"):
        sampler.step(
            lambda t, c: torch.zeros(1, CARD), torch.zeros(2, 1, dtype=torch.long), make_conditions()
        )


def test_sampler_guides_with_the_cfg_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    import stylecond.generation.sampler as sampler_module

    calls: list[str] = []
    for name in ("cfg", "double_cfg"):
        original = getattr(sampler_module, name)

        def spy(*args: object, _name: str = name, _original: object = original) -> Tensor:
            calls.append(_name)
            return _original(*args)  # type: ignore[operator]

        monkeypatch.setattr(sampler_module, name, spy)
    logits = torch.randn(6, CARD)
    sampler = DoubleCFGSampler(SamplingSettings(cfg_coef=2.0, cfg_coef_beta=4.0))
    sampler.combine(logits, 3)
    sampler.combine(logits, 2)
    assert calls == ["double_cfg", "cfg"]


def test_settings_defaults_are_musicgen_styles_and_validated() -> None:
    s = SamplingSettings()
    assert (s.cfg_coef, s.cfg_coef_beta, s.top_k, s.top_p, s.temperature) == (3.0, 5.0, 250, 0.0, 1.0)
    assert DoubleCFGSampler().settings == s
    assert s.replace(top_k=5).top_k == 5 and s.top_k == 250
    with pytest.raises(ValueError, match="temperature"):
        s.replace(temperature=-1.0)
    with pytest.raises(ValueError, match="settings"):
        DoubleCFGSampler(3.0)  # type: ignore[arg-type]
