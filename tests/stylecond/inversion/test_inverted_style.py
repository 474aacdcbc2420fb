from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import build_model
from torch import Tensor

from stylecond.generation.settings import SamplingSettings
from stylecond.inversion.generate_hook import inverted_overrides
from stylecond.inversion.inverted_style import InvertedStyle
from stylecond.inversion.module import TextualInversionModule
from stylecond.models.style_musicgen import StyleMusicGen


def invert(model: StyleMusicGen, audio: list[Tensor], mode: str, **kwargs: object) -> TextualInversionModule:
    ti = TextualInversionModule(model=model, mode=mode, steps=4, chunk_seconds=0.5, batch_size=2, **kwargs)
    ti.fit(audio[:2])
    return ti


@pytest.mark.parametrize("mode", ["lm_space", "token_embedding"])
def test_save_load_round_trip(
    model: StyleMusicGen, synth_audio: list[Tensor], tmp_path: Path, mode: str
) -> None:
    ti = invert(model, synth_audio, mode, num_tokens=2, token="<rt>")
    path = ti.save(tmp_path / "style.safetensors")
    style = InvertedStyle.load(path)
    assert torch.equal(style.vectors, ti.vectors.detach())
    assert style.mode == mode and style.token == "<rt>" and style.num_tokens == 2
    assert style.info["steps"] == "4" and "final_loss" in style.info
    style.check(model)  # the same model: no error


def test_load_into_a_fresh_copy_installs_the_token(
    base_model: StyleMusicGen, synth_audio: list[Tensor], tmp_path: Path
) -> None:
    ti = invert(copy.deepcopy(base_model), synth_audio, "token_embedding", token="<fresh>")
    path = ti.save(tmp_path / "s.safetensors")
    other = copy.deepcopy(base_model)  # same weights, vocabulary without the token
    assert "<fresh>" not in other.text_conditioner.tokenizer.get_vocab()
    InvertedStyle.load(path).apply_to(other)
    row = other.text_conditioner.input_embeddings().weight[
        other.text_conditioner.tokenizer.convert_tokens_to_ids("<fresh>")
    ]
    assert torch.allclose(row, ti.vectors.detach()[0])


def test_wrong_base_model_raises(model: StyleMusicGen, synth_audio: list[Tensor], tmp_path: Path) -> None:
    path = invert(model, synth_audio, "lm_space").save(tmp_path / "s.safetensors")
    style = InvertedStyle.load(path)
    other_config = build_model(fit_audio=synth_audio, dim=48, card=32)  # another architecture
    with pytest.raises(ValueError, match="another base model"):
        style.apply_to(other_config)
    retrained = copy.deepcopy(model)  # same config, different weights
    with torch.no_grad():
        retrained.lm.heads[0].weight.add_(0.01)
    with pytest.raises(ValueError, match="different weights"):
        style.apply_to(retrained)
    with pytest.raises(ValueError, match=str(path.name)):
        inverted_overrides(retrained, path, None)


def test_load_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such"):
        InvertedStyle.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="junk.safetensors"):
        InvertedStyle.load(junk)
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="not a stylecond textual-inversion file"):
        InvertedStyle.load(other)


@pytest.mark.parametrize("mode", ["lm_space", "token_embedding"])
def test_generation_with_the_learned_style(
    model: StyleMusicGen, synth_audio: list[Tensor], tmp_path: Path, mode: str
) -> None:
    path = invert(model, synth_audio, mode, token="<gen>").save(tmp_path / "s.safetensors")
    for texts in (None, ["<gen> with a solo piano", "solo piano"]):
        rows, overrides = inverted_overrides(model, path, texts)
        if mode == "token_embedding":
            assert rows is not None and all(r is not None and "<gen>" in r for r in rows)
        else:
            assert rows is None and overrides["text"].embeddings.shape[0] == (1 if texts is None else 2)
        wav = model.generate(
            texts=rows,
            condition_overrides=overrides,
            duration=0.1,
            seed=0,
            sampling=SamplingSettings(top_k=8, cfg_coef_beta=None),
        )
        n = 1 if texts is None else 2
        assert wav.shape[0] == n and wav.shape[1] == 1 and torch.isfinite(wav).all()


def test_null_conditions_fill_other_fuser_inputs(synth_audio: list[Tensor], tmp_path: Path) -> None:
    """A fuser routing style and text (no style audio): inversion and generation get a null style."""
    model = build_model(fit_audio=synth_audio, dim=32, card=32, fuser=("style", "text"))
    ti = invert(model, synth_audio, "lm_space")
    path = ti.save(tmp_path / "s.safetensors")
    rows, overrides = inverted_overrides(model, path, None)
    assert set(overrides) == {"style", "text"} and not overrides["style"].mask.any()
    wav = model.generate(
        texts=rows,
        condition_overrides=overrides,
        duration=0.1,
        sampling=SamplingSettings(top_k=8, cfg_coef_beta=None),
    )
    assert torch.isfinite(wav).all()
    _, with_style = inverted_overrides(model, path, None, style_given=True)
    assert set(with_style) == {"text"}
