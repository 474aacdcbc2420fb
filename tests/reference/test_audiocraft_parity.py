"""stylecond's loader against audiocraft's own code on the same exported weights: style tokens at every
eval_q, text conditions, LM logits, and greedy (double-)CFG generation token for token."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from stylecond.generation.settings import SamplingSettings
from stylecond.models.style_musicgen import StyleMusicGen
from tests.support.audiocraft_reference import Reference

SR = 32000
TEXTS = ["funky groove with bass", "chill lofi piano"]


@pytest.fixture(scope="module")
def style_wav() -> torch.Tensor:
    # exactly the excerpt length: audiocraft's random excerpt start is then 0, as is ours below
    return 0.1 * torch.randn(2, 1, 3 * SR, generator=torch.Generator().manual_seed(7))


def _attributes(texts: list[str | None], wavs: torch.Tensor | None) -> list[Any]:
    from audiocraft.modules.conditioners import ConditioningAttributes, WavCondition

    out = []
    for i, text in enumerate(texts):
        attr = ConditioningAttributes(text={"description": text})
        if wavs is not None:
            w = wavs[i]
            attr.wav["self_wav"] = WavCondition(
                w[None], torch.tensor([w.shape[-1]]), sample_rate=[SR], path=[None]
            )
        out.append(attr)
    return out


def _reference_conditions(
    ref: Reference, texts: list[str | None], wavs: torch.Tensor | None
) -> dict[str, Any]:
    provider = ref.musicgen.lm.condition_provider
    with torch.no_grad():
        return provider(provider.tokenize(_attributes(texts, wavs)))


def _ours(ref: Reference) -> StyleMusicGen:
    return StyleMusicGen.from_pretrained(ref.export)


def _codes_of(model: StyleMusicGen, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    decode = model.codec.decode
    monkeypatch.setattr(model.codec, "decode", lambda codes: (seen.append(codes.clone()), decode(codes))[1])
    return seen


def test_style_tokens_at_every_eval_q(style_reference: Reference, style_wav: torch.Tensor) -> None:
    ours = _ours(style_reference)
    n_q_out = style_reference.cfg["conditioners"]["self_wav"]["style"]["n_q_out"]
    for q in range(1, n_q_out + 1):
        style_reference.musicgen.set_style_conditioner_params(eval_q=q, excerpt_length=3.0)
        emb, mask = _reference_conditions(style_reference, TEXTS, style_wav)["self_wav"]
        with torch.no_grad():
            cond = ours.style_conditioner(
                style_wav, sample_rate=SR, n_q=q, excerpt_length=3.0, excerpt_start=0.0
            )
        assert cond.condition.embeddings.shape == emb.shape, q
        torch.testing.assert_close(cond.condition.embeddings, emb, rtol=0, atol=1e-5, msg=f"eval_q {q}")
        assert torch.equal(cond.condition.mask, mask.bool()), q


def test_text_conditions(
    style_reference: Reference, text_reference: Reference, style_wav: torch.Tensor
) -> None:
    for ref, texts, wavs in (
        (style_reference, [None, "chill lofi piano solo"], style_wav),
        (text_reference, ["funky groove with bass", None, "chill lofi piano solo"], None),
    ):
        emb, mask = _reference_conditions(ref, texts, wavs)["description"]
        with torch.no_grad():
            cond = _ours(ref).text_conditioner(texts)
        torch.testing.assert_close(cond.embeddings, emb, rtol=0, atol=1e-5)
        assert torch.equal(cond.mask, mask.bool())


@pytest.mark.parametrize("which", ["style", "text"])
def test_lm_logits(
    which: str, style_reference: Reference, text_reference: Reference, style_wav: torch.Tensor
) -> None:
    ref = style_reference if which == "style" else text_reference
    wavs = style_wav if which == "style" else None
    ref.musicgen.set_style_conditioner_params(eval_q=2, excerpt_length=3.0) if which == "style" else None
    conds = _reference_conditions(ref, TEXTS, wavs)
    codes = torch.randint(0, 32, (2, 2, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = ref.musicgen.lm.compute_predictions(codes, [], condition_tensors=conds)
        ours = _ours(ref)
        conditioning = ours.condition(texts=TEXTS, wav=None, style_wav=wavs, sample_rate=SR, n_q=2,
                                      excerpt_length=3.0, excerpt_start=0.0)  # fmt: skip
        fused = ours.fuser(conditioning.conditions)
        out = ours.lm(codes, prefix=fused.prefix, cross=fused.cross)
    valid = expected.mask.bool()  # audiocraft leaves out the trailing steps of the delayed codebooks
    assert bool((out.mask | ~valid).all()) and int(valid.sum()) > 0.9 * valid.numel()
    torch.testing.assert_close(out.logits[valid], expected.logits[valid], rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("beta", "with_text", "with_style"),
    [(5.0, True, True), (None, True, True), (None, True, False), (None, False, True)],
)
def test_greedy_generation_matches_token_for_token(
    beta: float | None, with_text: bool, with_style: bool, style_reference: Reference, style_wav: torch.Tensor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    mg = style_reference.musicgen
    mg.set_style_conditioner_params(eval_q=2, excerpt_length=3.0)
    mg.set_generation_params(use_sampling=False, duration=1.0, cfg_coef=3.0, cfg_coef_beta=beta)
    texts = TEXTS if with_text else [None, None]
    if with_style:
        _, expected = mg.generate_with_chroma(texts, style_wav, SR, return_tokens=True)
    else:
        _, expected = mg.generate(texts, return_tokens=True)
    ours = _ours(style_reference)
    seen = _codes_of(ours, monkeypatch)
    ours.generate(texts=TEXTS if with_text else None, style_audio=style_wav if with_style else None,
                  style_sample_rate=SR, duration=1.0, eval_q=2, excerpt_length=3.0, excerpt_start=0.0,
                  sampling=SamplingSettings(cfg_coef=3.0, cfg_coef_beta=beta, temperature=0.0))  # fmt: skip
    assert expected.shape[-1] >= 50
    assert torch.equal(seen[-1], expected)


def test_text_musicgen_greedy_generation(text_reference: Reference, monkeypatch: pytest.MonkeyPatch) -> None:
    mg = text_reference.musicgen
    mg.set_generation_params(use_sampling=False, duration=1.0, cfg_coef=3.0)
    _, expected = mg.generate(TEXTS, return_tokens=True)
    ours = _ours(text_reference)
    seen = _codes_of(ours, monkeypatch)
    ours.generate(texts=TEXTS, duration=1.0, sampling=SamplingSettings(cfg_coef=3.0, temperature=0.0))
    assert torch.equal(seen[-1], expected)


def test_codec_decodes_like_audiocraft(style_reference: Reference) -> None:
    codes = torch.randint(0, 32, (1, 2, 25), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = style_reference.musicgen.compression_model.decode(codes)
        wav = _ours(style_reference).codec.decode(codes)
    torch.testing.assert_close(wav, expected, rtol=0, atol=1e-5)
