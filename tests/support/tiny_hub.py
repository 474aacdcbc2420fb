"""Tiny random stand-ins of the hub models MusicGen-Style names (``t5-base``, ``m-a-p/MERT-v1-95M``,
``facebook/encodec_32khz``), saved as local directories or as a Hugging Face hub cache (so code that
loads them *by hub name*, audiocraft's included, finds them offline with ``HF_HUB_OFFLINE=1``).

Widths follow what audiocraft hard-codes (768 for T5-base and MERT); everything else is tiny.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

FAKE_COMMIT = "0" * 40
SAMPLE_RATE = 32000
WORDS = [
    "the",
    "a",
    "an",
    "and",
    "with",
    "of",
    "in",
    "to",
    "for",
    "on",
    "is",
    "music",
    "song",
    "beat",
    "drum",
    "drums",
    "bass",
    "guitar",
    "piano",
    "synth",
    "jazz",
    "rock",
    "pop",
    "disco",
    "funky",
    "groove",
    "chill",
    "lofi",
    "remix",
    "energetic",
    "happy",
    "sad",
    "slow",
    "fast",
    "electronic",
    "acoustic",
    "calm",
    "solo",
    "techno",
]


def snapshot(cache: Path, repo_id: str, commit: str = FAKE_COMMIT, ref: str = "main") -> Path:
    """``<cache>/models--org--name/snapshots/<commit>`` with ``refs/<ref>`` pointing at it."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snap


def tiny_t5(out: Path, *, d_model: int = 768, seed: int = 1) -> Path:
    """A T5 encoder (1 layer) + a tokenizer built offline from a small Unigram vocabulary."""
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    letters = list("abcdefghijklmnopqrstuvwxyz0123456789-'.,!?")
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -3.0 - 0.01 * i) for i, w in enumerate(WORDS)]
    vocab += [(c, -8.0 - 0.01 * i) for i, c in enumerate(letters)]
    vocab += [("\u2581" + c, -9.0 - 0.01 * i) for i, c in enumerate(letters)]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=16, d_ff=64, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, dropout_rate=0.0,
        feed_forward_proj="relu", is_encoder_decoder=False, use_cache=False, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0,
    )  # fmt: skip
    torch.manual_seed(seed)
    T5EncoderModel(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def hubert_config(hidden: int = 768) -> dict[str, Any]:
    """MERT-v1-95M's architecture (group-norm conv stack, 75 Hz at 24 kHz, post-LN) at a tiny size."""
    return dict(
        hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=[8] * 7,
        conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_bias=False,
        feat_extract_norm="group", feat_extract_activation="gelu", feat_proj_layer_norm=True,
        do_stable_layer_norm=False, hidden_act="gelu", layer_norm_eps=1e-5, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=16, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        feat_proj_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0, vocab_size=32,
    )  # fmt: skip


def tiny_mert(out: Path, *, seed: int = 2, mert_layout: bool = False) -> Path:
    """A tiny HuBERT with MERT's architecture. ``mert_layout=True`` saves it the way MERT's hub repository
    is laid out (``model_type: mert_model``, MERT-only fields, ``auto_map``, legacy ``weight_g``/``weight_v``
    names in ``pytorch_model.bin``), without MERT's code: only stylecond's native mapping can load it."""
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(seed)
    model = HubertModel(HubertConfig(**hubert_config())).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a wrong mapping shows
        for name, p in model.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    if not mert_layout:
        model.save_pretrained(out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, value in model.state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        state[key.replace("parametrizations.weight.original1", "weight_v")] = value.clone()
    torch.save(state, out / "pytorch_model.bin")
    config = {**hubert_config(), "model_type": "mert_model", "architectures": ["MERTModel"],
              "auto_map": {"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"},
              "feature_extractor_cqt": False, "feature_extractor_cqt_bins": 336, "deepnorm": False,
              "attention_relax": -1.0, "sample_rate": 24000}  # fmt: skip
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def tiny_encodec(out: Path, *, codebook_size: int = 32, num_codebooks: int = 2, seed: int = 3) -> Path:
    """A tiny EnCodec like ``facebook/encodec_32khz``: 32 kHz mono, 50 Hz (ratios 8, 5, 4, 4), no chunking,
    ``num_codebooks`` codebooks at its only target bandwidth."""
    from transformers import EncodecConfig, EncodecModel

    bandwidth = num_codebooks * 50 * math.log2(codebook_size) / 1000
    config = EncodecConfig(
        sampling_rate=SAMPLE_RATE, upsampling_ratios=[8, 5, 4, 4], hidden_size=16, num_filters=4,
        codebook_size=codebook_size, codebook_dim=16, num_lstm_layers=1, target_bandwidths=[bandwidth],
        kernel_size=7, last_kernel_size=7, residual_kernel_size=3, use_causal_conv=False, normalize=False,
        chunk_length_s=None, overlap=None, pad_mode="constant",
    )  # fmt: skip
    torch.manual_seed(seed)
    model = EncodecModel(config).eval()
    with torch.no_grad():
        for name, buf in model.quantizer.named_buffers():
            if name.endswith("codebook.embed"):
                buf.normal_(std=0.05)
    model.save_pretrained(out)
    return out


def fake_hub(cache: Path) -> Path:
    """A hub cache holding ``t5-base``, ``m-a-p/MERT-v1-95M`` and ``facebook/encodec_32khz`` stand-ins."""
    tiny_t5(snapshot(cache, "t5-base"))
    tiny_mert(snapshot(cache, "m-a-p/MERT-v1-95M"))
    tiny_encodec(snapshot(cache, "facebook/encodec_32khz"))
    return cache
