"""An export written by an earlier version (tests/fixtures/legacy_export, built at commit 0b791d2) loads
and produces exactly what that version produced: style tokens at every eval_q, text conditions, LM
logits and generated tokens (greedy and seeded sampling)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stylecond.generation.settings import SamplingSettings
from stylecond.models.style_musicgen import StyleMusicGen

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "legacy_export"


@pytest.fixture(scope="module")
def legacy(legacy_export_dir: Path) -> tuple[StyleMusicGen, dict[str, torch.Tensor]]:
    return StyleMusicGen.from_pretrained(legacy_export_dir), load_file(str(FIXTURE / "expected.safetensors"))


def _capture_codes(model: StyleMusicGen, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    captured: list[torch.Tensor] = []
    decode = model.codec.decode

    def spy(codes: torch.Tensor) -> torch.Tensor:
        captured.append(codes.clone())
        return decode(codes)

    monkeypatch.setattr(model.codec, "decode", spy)
    return captured


def test_conditions_and_logits_are_unchanged(legacy: tuple[StyleMusicGen, dict[str, torch.Tensor]]) -> None:
    model, expected = legacy
    ref = expected["ref"][None]
    sc = model.style_conditioner
    with torch.no_grad():
        for q in range(1, 7):
            cond = sc(ref, sample_rate=16000, n_q=q).condition
            torch.testing.assert_close(cond.embeddings, expected[f"style_q{q}"], rtol=0, atol=1e-6)
            assert torch.equal(cond.mask, expected["style_mask"])
        text = model.text_conditioner(["calm solo piano", "fast techno"])
        torch.testing.assert_close(text.embeddings, expected["text_embeddings"], rtol=0, atol=1e-6)
        assert torch.equal(text.mask, expected["text_mask"])
        conditioning = model.condition(
            texts=["calm solo piano", "fast techno"],
            wav=None,
            style_wav=ref.expand(2, -1, -1),
            sample_rate=16000,
        )
        fused = model.fuser(conditioning.conditions)
        logits = model.lm(expected["codes"], prefix=fused.prefix, cross=fused.cross).logits
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=1e-5)


def test_generation_is_unchanged(
    legacy: tuple[StyleMusicGen, dict[str, torch.Tensor]], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, expected = legacy
    ref = expected["ref"]
    captured = _capture_codes(model, monkeypatch)
    greedy = SamplingSettings(temperature=0.0)
    wav = model.generate(texts=["fast techno"], style_audio=ref, duration=0.5, eval_q=2, sampling=greedy)
    assert torch.equal(captured[-1], expected["greedy_codes"])
    torch.testing.assert_close(wav, expected["greedy_wav"], rtol=0, atol=1e-5)
    top8 = SamplingSettings(top_k=8)
    model.generate(texts=["fast techno"], style_audio=ref, duration=0.5, seed=3, sampling=top8)
    assert torch.equal(captured[-1], expected["sampled_codes"])
    model.generate(style_audio=ref, duration=0.5, seed=4, sampling=top8, eval_q=1)
    assert torch.equal(captured[-1], expected["style_only_codes"])
    model.generate(texts=["calm solo piano"], duration=0.5, seed=5, sampling=top8)
    assert torch.equal(captured[-1], expected["text_only_codes"])
