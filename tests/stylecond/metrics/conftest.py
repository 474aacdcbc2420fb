"""Tiny random-initialised CLAP model + processor saved to disk (loaded back by path, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def save_tiny_clap(path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        PreTrainedTokenizerFast,
    )

    text: dict[str, Any] = dict(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        projection_dim=8,
        max_position_embeddings=40,
    )
    audio: dict[str, Any] = dict(
        window_size=4,
        num_mel_bins=16,
        spec_size=64,
        patch_size=4,
        patch_stride=(4, 4),
        hidden_size=16,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        projection_dim=8,
        patch_embeds_hidden_size=8,
        num_hidden_layers=2,
    )
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=8)).save_pretrained(path)
    words = [
        "a",
        "the",
        "of",
        "dog",
        "cat",
        "music",
        "rock",
        "jazz",
        "piano",
        "guitar",
        "drum",
        "with",
        "slow",
        "fast",
    ]
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    fe = ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=16000,
        hop_length=160,
        max_length_s=1,
        fft_window_size=400,
        frequency_max=8000,
        truncation="rand_trunc",
    )
    ClapProcessor(feature_extractor=fe, tokenizer=tokenizer).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clap(tmp_path_factory.mktemp("tiny_clap"))
