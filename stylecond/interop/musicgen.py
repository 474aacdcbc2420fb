"""Weights conversion from transformers' MusicGen decoder (``MusicgenForCausalLM``) to :class:`MusicLM`.

transformers' MusicGen decoder is architecturally MusicLM with: K summed embeddings of ``vocab_size + 1``
rows (pad = bos = ``vocab_size`` = our special id; no embedding scale: transformers 5.x computes
``embed_scale`` from ``scale_embedding`` but never applies it, so neither do we), sinusoidal
positions ``cat(cos, sin)`` (period 10000) starting at 0 at the first decoder position, pre-norm layers
with affine LayerNorms (with bias, eps 1e-5), bias-free attention/FFN projections, GELU (exact),
cross-attention to ``encoder_hidden_states`` of width ``hidden_size`` in every layer, a final LayerNorm
and one bias-free head per codebook. Its delay pattern puts code (k, t) at step ``t + k + 1`` behind an
all-bos first step (stereo: delay ``k // 2``), exactly :class:`DelayPattern`, so the same pattern-space
``input_ids`` give the same logits (see tests/stylecond/interop/test_musicgen.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from stylecond.lm.music_lm import MusicLM
from stylecond.lm.patterns import DelayPattern


def _decoder_lm(hf_model: Any) -> Any:
    """The ``MusicgenForCausalLM`` inside ``hf_model`` (itself, or ``.decoder`` of the conditional model)."""
    name = type(hf_model).__name__
    if name == "MusicgenForConditionalGeneration":
        return hf_model.decoder
    if name != "MusicgenForCausalLM":
        raise ValueError(
            f"hf_model must be a MusicgenForCausalLM (or MusicgenForConditionalGeneration), got {name}"
        )
    return hf_model


def decoder_lm_args(cfg: Any) -> dict[str, Any]:
    """:class:`MusicLM` init args (the pattern as a ``class_path`` config) for a ``MusicgenDecoderConfig``;
    ValueError for a config whose decoder MusicLM cannot reproduce."""
    if cfg.activation_function != "gelu":
        raise ValueError(f"config.activation_function must be 'gelu', got {cfg.activation_function!r}")
    if cfg.pad_token_id != cfg.vocab_size or cfg.bos_token_id != cfg.vocab_size:
        raise ValueError(
            "config pad_token_id and bos_token_id must equal vocab_size "
            f"({cfg.vocab_size}), got {cfg.pad_token_id} and {cfg.bos_token_id}"
        )
    k = int(cfg.num_codebooks)
    delays = [c // 2 for c in range(k)] if cfg.audio_channels == 2 else list(range(k))
    return {
        "num_codebooks": k,
        "card": int(cfg.vocab_size),
        "dim": int(cfg.hidden_size),
        "num_heads": int(cfg.num_attention_heads),
        "num_layers": int(cfg.num_hidden_layers),
        "ffn_dim": int(cfg.ffn_dim),
        "dropout": float(cfg.dropout),
        "pattern": {"class_path": "stylecond.lm.patterns.DelayPattern", "init_args": {"delays": delays}},
        "cross_attention": True,
        "cross_dim": int(cfg.hidden_size),
        "bias": False,
        "norm_bias": True,
        "norm_eps": 1e-5,
        "scale_embedding": False,  # transformers ignores config.scale_embedding in the forward
    }


def musicgen_from_transformers(hf_model: Any) -> MusicLM:
    """Copy the weights of a transformers ``MusicgenForCausalLM`` into a new :class:`MusicLM`.

    The result has ``cross_attention=True`` with ``cross_dim = hidden_size`` (MusicGen's text path: project
    the text encoder output with the conditional model's ``enc_to_dec_proj`` yourself). Prefix conditioning
    is not part of MusicGen; the copy works with it as with any MusicLM. Float32 copy on the CPU.

    Raises:
        ValueError: ``hf_model`` is another class, or its config uses an activation other than ``gelu``.
    """
    lm = _decoder_lm(hf_model)
    cfg = lm.config
    args = decoder_lm_args(cfg)
    k = args["num_codebooks"]
    model = MusicLM(**{**args, "pattern": DelayPattern(delays=args["pattern"]["init_args"]["delays"])})
    src = {n: t.detach().float().cpu() for n, t in lm.state_dict().items()}
    model.load_state_dict(decoder_state(src, num_layers=cfg.num_hidden_layers, num_codebooks=k), strict=True)
    return model


def decoder_state(
    src: Mapping[str, torch.Tensor], *, num_layers: int, num_codebooks: int
) -> dict[str, torch.Tensor]:
    """A ``MusicgenForCausalLM`` state dict (``model.decoder.*``, ``lm_heads.*``) -> :class:`MusicLM` names."""
    out: dict[str, torch.Tensor] = {}
    for c in range(num_codebooks):
        out[f"embeddings.{c}.weight"] = src[f"model.decoder.embed_tokens.{c}.weight"]
        out[f"heads.{c}.weight"] = src[f"lm_heads.{c}.weight"]
    norms = {
        "self_attn_layer_norm": "norm1",
        "encoder_attn_layer_norm": "norm_cross",
        "final_layer_norm": "norm2",
    }
    for i in range(num_layers):
        s, d = f"model.decoder.layers.{i}.", f"transformer.layers.{i}."
        qkv = [src[f"{s}self_attn.{p}_proj.weight"] for p in ("q", "k", "v")]
        out[f"{d}self_attn.in_proj.weight"] = torch.cat(qkv)
        out[f"{d}self_attn.out_proj.weight"] = src[f"{s}self_attn.out_proj.weight"]
        out[f"{d}cross_attn.q_proj.weight"] = src[f"{s}encoder_attn.q_proj.weight"]
        kv = [src[f"{s}encoder_attn.{p}_proj.weight"] for p in ("k", "v")]
        out[f"{d}cross_attn.kv_proj.weight"] = torch.cat(kv)
        out[f"{d}cross_attn.out_proj.weight"] = src[f"{s}encoder_attn.out_proj.weight"]
        out[f"{d}linear1.weight"] = src[f"{s}fc1.weight"]
        out[f"{d}linear2.weight"] = src[f"{s}fc2.weight"]
        for hf_name, ours in norms.items():
            out[f"{d}{ours}.weight"] = src[f"{s}{hf_name}.weight"]
            out[f"{d}{ours}.bias"] = src[f"{s}{hf_name}.bias"]
    out["transformer.out_norm.weight"] = src["model.decoder.layer_norm.weight"]
    out["transformer.out_norm.bias"] = src["model.decoder.layer_norm.bias"]
    return out
