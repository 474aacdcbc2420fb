"""StyleMusicGen: joint training step, anti-copy mask, generation, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datamodules.batch import AudioBatch
from datamodules.synth import SynthStyles
from stylecond.generation.settings import SamplingSettings
from stylecond.models.style_musicgen import StyleMusicGen


def _batch(b: int = 3, seconds: float = 2.0, *, paired: list[bool] | None = None) -> AudioBatch:
    synth = SynthStyles(sample_rate=16000, seed=0)
    clips = list(synth.clips(b, seconds=seconds, seed=3))
    audio = torch.stack([c.audio for c in clips])  # [B, 1, T]
    batch = AudioBatch(
        audio=audio,
        audio_mask=torch.ones(b, audio.shape[-1], dtype=torch.bool),
        texts=[c.caption for c in clips],
        keys=[str(i) for i in range(b)],
        sample_rate=16000,
        metadata=[{} for _ in clips],
    )
    if paired is not None:
        batch.style_audio = audio.flip(0)[..., :16000]
        batch.has_style = torch.tensor(paired)
    return batch


def test_training_step_trains_lm_style_and_text_projection(tiny_model: StyleMusicGen) -> None:
    tiny_model.train()
    loss = tiny_model.shared_step(_batch(), stage="train")
    assert torch.isfinite(loss)
    loss.backward()
    grads = {n for n, p in tiny_model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("lm.") for n in grads)
    assert any(n.startswith("text_conditioner.proj") for n in grads)
    assert any(n.startswith("style_conditioner.") and ("transformer" in n or "encoder" in n) for n in grads)
    assert not any(n.startswith("text_conditioner.encoder") for n in grads)  # frozen
    assert not any(p.requires_grad for p in tiny_model.codec.parameters())


def test_anti_copy_mask_covers_the_excerpt(
    tiny_model: StyleMusicGen, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, torch.Tensor | None] = {}
    original = tiny_model.lm.compute_loss

    def spy(out, codes, *, padding_mask=None, loss_mask=None):  # noqa: ANN001, ANN202
        seen["mask"] = loss_mask
        return original(out, codes, padding_mask=padding_mask, loss_mask=loss_mask)

    monkeypatch.setattr(tiny_model.lm, "compute_loss", spy)
    tiny_model.conditioning_dropout.p_all = 0.0
    tiny_model.conditioning_dropout.p_style = 0.0
    tiny_model.train()
    tiny_model.shared_step(_batch(), stage="train")
    mask = seen["mask"]
    assert mask is not None
    frames = mask.sum(-1).float()  # excerpts of 0.5..1.0 s at 50 Hz
    assert bool(((frames >= 24) & (frames <= 51)).all()), frames


def test_paired_rows_have_no_anti_copy_mask(tiny_model: StyleMusicGen) -> None:
    tiny_model.eval()
    conditioning = tiny_model.condition(
        texts=None,
        wav=_batch().audio,
        sample_rate=16000,
        style_wav=_batch(paired=[True, False, True]).style_audio,
        has_style=torch.tensor([True, False, True]),
    )
    conditions, span = conditioning.conditions, conditioning.excerpt_span
    assert span is not None
    assert torch.equal(span[0], torch.zeros(2)) and torch.equal(span[2], torch.zeros(2))
    assert float(span[1, 1] - span[1, 0]) == pytest.approx(1.0, abs=0.01)
    assert conditions["style"].mask.any(dim=1).all()


def test_generate_shapes_and_errors(tiny_model: StyleMusicGen) -> None:
    ref = SynthStyles(sample_rate=16000).clip("techno", seconds=2.0, seed=0).audio
    wav = tiny_model.generate(
        texts=["a calm piano"], style_audio=ref, duration=0.5, seed=0, sampling=SamplingSettings(top_k=5)
    )
    assert wav.shape[0] == 1 and wav.shape[1] == 1
    assert wav.shape[-1] == pytest.approx(0.5 * 16000, rel=0.1)
    with pytest.raises(ValueError, match="duration"):
        tiny_model.generate(texts=["x"], duration=0)
    with pytest.raises(ValueError, match="eval_q"):
        tiny_model.generate(style_audio=ref, duration=0.2, eval_q=9)
    with pytest.raises(ValueError, match="style_wav|wav"):
        tiny_model.generate(style_audio=ref[..., :4000], duration=0.2)
    with pytest.raises(ValueError, match="texts"):
        tiny_model.generate(texts=["a", "b"], style_audio=ref, duration=0.2)


def test_generate_is_reproducible_with_seed(tiny_model: StyleMusicGen) -> None:
    a = tiny_model.generate(texts=["fast techno"], duration=0.3, seed=3, sampling=SamplingSettings(top_k=8))
    b = tiny_model.generate(texts=["fast techno"], duration=0.3, seed=3, sampling=SamplingSettings(top_k=8))
    assert torch.equal(a, b)


def test_save_and_from_pretrained_round_trip(
    tiny_model: StyleMusicGen, tiny_config: dict, tmp_path: Path
) -> None:
    tiny_model.model_config = tiny_config
    out = tiny_model.save_pretrained(tmp_path / "export")
    loaded = StyleMusicGen.from_pretrained(out)
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert not any(k.startswith("text_conditioner.encoder") for k in loaded.state_dict())


def test_codec_and_lm_must_agree(tiny_model: StyleMusicGen) -> None:
    # The CLI links MelCodec's layout into the LM; a codec whose layout is not an init arg (EnCodec) or a
    # hand-built model can still disagree, and setup says which fields.
    from stylecond.lm.music_lm import MusicLM

    lm = MusicLM(num_codebooks=4, card=32, dim=32, num_heads=2, num_layers=1)
    model = StyleMusicGen(codec=tiny_model.codec, lm=lm, text_conditioner=tiny_model.text_conditioner)
    with pytest.raises(ValueError, match="card=32"):
        model.setup("fit")


def test_eval_q_and_excerpt_travel_as_arguments(
    tiny_model: StyleMusicGen, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylecond.quantization.rvq_bottleneck import RVQBottleneck

    seen: list[int | None] = []
    forward = RVQBottleneck.forward

    def spy(self: RVQBottleneck, x: torch.Tensor, **kwargs: object) -> object:
        seen.append(kwargs.get("n_q"))  # type: ignore[arg-type]
        return forward(self, x, **kwargs)  # type: ignore[arg-type]

    def refuse(self: object, value: object) -> None:
        raise AssertionError("generation must not set eval_q on a module")

    monkeypatch.setattr(RVQBottleneck, "forward", spy)
    monkeypatch.setattr(RVQBottleneck, "eval_q", property(lambda self: self._eval_q, refuse))
    ref = SynthStyles(sample_rate=16000).clip("techno", seconds=2.0, seed=0).audio
    sc = tiny_model.style_conditioner
    before = (sc.eval_q, sc.excerpt_length, sc.excerpt_start)
    tiny_model.generate(
        style_audio=ref, duration=0.2, eval_q=5, excerpt_length=0.6, excerpt_start=0.25, seed=0
    )
    assert seen[-1] == 5
    assert (sc.eval_q, sc.excerpt_length, sc.excerpt_start) == before
    out = sc.eval()(ref[None], sample_rate=16000, n_q=5, excerpt_length=0.6, excerpt_start=0.25)
    assert out.rvq.n_q == 5 and out.excerpt_span is not None
    torch.testing.assert_close(out.excerpt_span[0], torch.tensor([0.25, 0.85]))


def test_seeded_generate_neither_seeds_nor_draws_from_the_global_rng(tiny_model: StyleMusicGen) -> None:
    ref = SynthStyles(sample_rate=16000).clip("techno", seconds=2.0, seed=0).audio
    kwargs = dict(texts=["fast techno"], style_audio=ref, duration=0.2, excerpt_start="random")
    state = torch.random.get_rng_state()
    a = tiny_model.generate(seed=1, **kwargs)  # type: ignore[arg-type]
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(5)  # unseeded: the caller's global RNG decides, so torch.manual_seed reproduces
    b = tiny_model.generate(**kwargs)  # type: ignore[arg-type]
    torch.manual_seed(5)
    assert torch.equal(b, tiny_model.generate(**kwargs))  # type: ignore[arg-type]
    assert torch.equal(a, tiny_model.generate(seed=1, **kwargs))  # type: ignore[arg-type]


def test_commitment_loss_is_added_and_logged_when_weighted(
    tiny_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy

    from stylecond.models.pretrained import instantiate_model

    logged: dict[str, float] = {}

    def log(self: StyleMusicGen, name: str, value: torch.Tensor, **kwargs: object) -> None:
        logged[name] = float(value)

    monkeypatch.setattr(StyleMusicGen, "log", log)
    monkeypatch.setattr(StyleMusicGen, "log_dict", lambda self, metrics, **kw: None)
    losses = {}
    for weight in (0.0, 2.0):
        config = copy.deepcopy(tiny_config)
        config["init_args"]["style_conditioner"]["init_args"]["commitment_weight"] = weight
        torch.manual_seed(0)
        model = instantiate_model(config)
        model.conditioning_dropout.p_all = model.conditioning_dropout.p_style = 0.0
        model.train()
        logged.clear()
        losses[weight] = float(model.shared_step(_batch(), stage="train"))
        if weight:
            commit = logged["train/commit_loss"]
            assert commit > 0
            assert losses[weight] == pytest.approx(logged["train/loss"])
        else:
            assert "train/commit_loss" not in logged
    assert losses[2.0] > losses[0.0]
