"""A transformers MusicgenForConditionalGeneration saved locally loads into StyleMusicGen (decoder, T5 text
encoder with enc_to_dec_proj, EnCodec) and behaves as transformers' own code on the same weights: text
conditions, logits and greedy classifier-free-guided generation token for token."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    AutoTokenizer,
    EncodecConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    T5Config,
)

from stylecond.conditioners.types import ConditionTensors
from stylecond.generation.settings import SamplingSettings
from stylecond.models.style_musicgen import StyleMusicGen
from tests.support.tiny_hub import tiny_encodec, tiny_t5

CARD, K, D = 32, 2, 32
TEXTS = ["funky groove with bass", "calm solo piano"]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hf_musicgen")
    t5 = tiny_t5(root / "t5", d_model=24)
    enc = tiny_encodec(root / "encodec", codebook_size=CARD, num_codebooks=K)
    decoder = MusicgenDecoderConfig(vocab_size=CARD, hidden_size=D, num_hidden_layers=2, num_attention_heads=4,
                                    ffn_dim=64, num_codebooks=K, max_position_embeddings=256, pad_token_id=CARD,
                                    bos_token_id=CARD)  # fmt: skip
    config = MusicgenConfig(
        text_encoder=T5Config.from_pretrained(t5).to_dict(),
        audio_encoder=EncodecConfig.from_pretrained(enc).to_dict(),
        decoder=decoder.to_dict(),
    )
    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(config).eval()
    with torch.no_grad():  # non-trivial projection bias and norms
        model.enc_to_dec_proj.bias.normal_(std=0.1)
        for name, p in model.decoder.named_parameters():
            if "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
        model.audio_encoder.load_state_dict(
            type(model.audio_encoder).from_pretrained(enc).state_dict()
        )  # codebooks with spread
    out = root / "musicgen"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(t5).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def both(hf_dir: Path) -> tuple[MusicgenForConditionalGeneration, StyleMusicGen]:
    hf = MusicgenForConditionalGeneration.from_pretrained(hf_dir).eval()
    return hf, StyleMusicGen.from_pretrained(hf_dir)


def test_structure_and_defaults(both: tuple[MusicgenForConditionalGeneration, StyleMusicGen]) -> None:
    _, ours = both
    assert ours.style_conditioner is None and ours.fuser.cross == ("text",) and ours.fuser.prefix == ()
    assert ours.lm.condition_masks and ours.lm.has_cross_attention
    assert ours.text_conditioner.component == "text_encoder" and ours.codec.component == "audio_encoder"
    assert (ours.codec.num_codebooks, ours.codec.cardinality, ours.codec.frame_rate) == (K, CARD, 50.0)


def test_text_condition_and_logits(both: tuple[MusicgenForConditionalGeneration, StyleMusicGen]) -> None:
    hf, ours = both
    tok = AutoTokenizer.from_pretrained(ours.text_conditioner.model_name_or_path)(
        TEXTS, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = hf.text_encoder(**tok).last_hidden_state
        expected = hf.enc_to_dec_proj(hidden) * tok["attention_mask"][..., None]
        cond = ours.text_conditioner(TEXTS)
        torch.testing.assert_close(cond.embeddings, expected, rtol=0, atol=1e-5)
        assert torch.equal(cond.mask, tok["attention_mask"].bool())
        codes = torch.randint(0, CARD, (2, K, 12), generator=torch.Generator().manual_seed(1))
        seq, _ = ours.lm.pattern.build(codes, ours.lm.special_id)
        ref = hf.decoder(input_ids=seq.reshape(2 * K, -1), encoder_hidden_states=expected,
                         encoder_attention_mask=tok["attention_mask"]).logits  # fmt: skip
        got = ours.lm.forward_sequence(seq, cross=ConditionTensors(cond.embeddings, cond.mask))
    torch.testing.assert_close(got, ref.reshape(got.shape), rtol=0, atol=1e-4)


def test_greedy_guided_generation_matches_transformers(
    both: tuple[MusicgenForConditionalGeneration, StyleMusicGen], monkeypatch: pytest.MonkeyPatch
) -> None:
    hf, ours = both
    seen: dict[str, torch.Tensor] = {}
    hf_decode, our_decode = hf.audio_encoder.decode, ours.codec.decode

    def hf_spy(codes: torch.Tensor, *args: object, **kwargs: object) -> object:
        seen["hf"] = codes.clone()
        return hf_decode(codes, *args, **kwargs)

    def our_spy(codes: torch.Tensor) -> torch.Tensor:
        seen["ours"] = codes.clone()
        return our_decode(codes)

    monkeypatch.setattr(hf.audio_encoder, "decode", hf_spy)
    monkeypatch.setattr(ours.codec, "decode", our_spy)
    tok = AutoTokenizer.from_pretrained(ours.text_conditioner.model_name_or_path)(
        TEXTS, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        hf.generate(**tok, do_sample=False, guidance_scale=3.0, max_new_tokens=51)
    expected = seen["hf"][0]  # [B, K, T]
    frames = expected.shape[-1]
    ours.generate(
        texts=TEXTS, duration=frames / 50.0, sampling=SamplingSettings(cfg_coef=3.0, temperature=0.0)
    )
    assert frames >= 50
    assert torch.equal(seen["ours"], expected)
