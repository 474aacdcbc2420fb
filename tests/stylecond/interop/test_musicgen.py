"""Parity of MusicLM with transformers' MusicgenForCausalLM after weights conversion.

Compared: the logits [B, K, S, card] of both decoders on the same pattern-space ``input_ids`` (our
``DelayPattern.build`` of random codes, which is also checked to equal transformers' own
``build_delay_pattern_mask``), with cross-attention to random ``encoder_hidden_states`` under a partial
``encoder_attention_mask``; plus MusicLM's aligned ``forward(codes)`` against the HF logits re-aligned.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

from stylecond.conditioners.types import ConditionTensors
from stylecond.interop.musicgen import musicgen_from_transformers
from stylecond.lm.patterns import DelayPattern

CARD, K, D = 32, 3, 32


def _hf_model(tmp_path: Path, **overrides: object) -> MusicgenForCausalLM:
    kwargs: dict = dict(
        vocab_size=CARD,
        hidden_size=D,
        num_hidden_layers=2,
        num_attention_heads=4,
        ffn_dim=64,
        num_codebooks=K,
        max_position_embeddings=64,
        pad_token_id=CARD,
        bos_token_id=CARD,
    )
    kwargs.update(overrides)
    MusicgenForCausalLM(MusicgenDecoderConfig(**kwargs)).save_pretrained(tmp_path)
    return MusicgenForCausalLM.from_pretrained(tmp_path).eval()


@pytest.mark.parametrize("scale_embedding", [False, True])  # transformers ignores it in its forward
def test_logits_match_transformers(tmp_path: Path, scale_embedding: bool) -> None:
    hf = _hf_model(tmp_path, scale_embedding=scale_embedding)
    ours = musicgen_from_transformers(hf).eval()
    b, t = 2, 7
    codes = torch.randint(0, CARD, (b, K, t))
    seq, _ = ours.pattern.build(codes, ours.special_id)
    s = seq.shape[2]
    assert s == t + K

    # transformers' own delay pattern (bos column prepended, as in its generate) gives the same sequence
    with_bos = torch.cat([torch.full((b, K, 1), CARD), codes], dim=2).reshape(b * K, t + 1)
    _, hf_pattern = hf.build_delay_pattern_mask(with_bos, pad_token_id=CARD, max_length=s)  # type: ignore[arg-type]
    assert torch.equal(hf_pattern.reshape(b, K, s), seq)

    enc = torch.randn(b, 5, D)
    enc_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        ref = hf(
            input_ids=seq.reshape(b * K, s), encoder_hidden_states=enc, encoder_attention_mask=enc_mask.long()
        ).logits.reshape(b, K, s, CARD)
        got = ours.forward_sequence(seq, cross=ConditionTensors(enc, enc_mask))
        aligned = ours(codes, cross=ConditionTensors(enc, enc_mask))
    assert ref.abs().max() > 0.1  # not trivially zero
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)
    # forward(codes) = HF logits gathered at the step before each code (step t + k)
    idx = (torch.arange(t)[None, :] + torch.arange(K)[:, None])[None, :, :, None].expand(b, K, t, CARD)
    torch.testing.assert_close(aligned.logits, ref.gather(2, idx), atol=1e-4, rtol=0)


def test_stereo_delays_and_bad_model(tmp_path: Path) -> None:
    hf = _hf_model(tmp_path, num_codebooks=4, audio_channels=2)
    pattern = musicgen_from_transformers(hf).pattern
    assert isinstance(pattern, DelayPattern) and pattern.delays == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="hf_model"):
        musicgen_from_transformers(torch.nn.Linear(2, 2))
