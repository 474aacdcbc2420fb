"""transformers' ``MusicgenForConditionalGeneration`` (directory or hub id) -> a :class:`StyleMusicGen` config
and state dict: the decoder, the T5 text encoder with ``enc_to_dec_proj``, and EnCodec.

The decoder and ``enc_to_dec_proj`` become our trainable weights; T5 and EnCodec stay frozen parts that
load lazily from the same checkpoint (``component="text_encoder"`` / ``"audio_encoder"``), so nothing
is duplicated. Text goes through cross-attention (no prefix), as in MusicGen.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from stylecond.interop.musicgen import decoder_lm_args, decoder_state
from stylecond.utils.hf_component import component_state_dict

MODEL = "stylecond.models.style_musicgen.StyleMusicGen"


def _generation_defaults(source: str, *, revision: str | None, local_files_only: bool) -> dict[str, Any]:
    """``SamplingSettings`` fields from the checkpoint's ``generation_config.json`` (guidance, top-k, ...)."""
    from transformers import GenerationConfig

    try:
        gen = GenerationConfig.from_pretrained(
            source, revision=revision or "main", local_files_only=local_files_only
        )
    except OSError:  # no generation_config.json: stylecond's defaults apply
        return {}
    out: dict[str, Any] = {"cfg_coef_beta": None}  # text only: plain CFG
    if getattr(gen, "guidance_scale", None):
        out["cfg_coef"] = float(gen.guidance_scale)
    if getattr(gen, "top_k", None) is not None:
        out["top_k"] = int(gen.top_k)
    if getattr(gen, "temperature", None) is not None:
        out["temperature"] = float(gen.temperature) if getattr(gen, "do_sample", True) else 0.0
    return out


def read_transformers_musicgen(
    source: str, *, revision: str | None = None, local_files_only: bool = False
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(stylecond config, state dict)`` of a transformers MusicGen checkpoint."""
    from transformers import AutoConfig, MusicgenConfig

    hub: dict[str, Any] = {"revision": revision, "local_files_only": local_files_only}
    config = AutoConfig.from_pretrained(source, **hub)
    if not isinstance(config, MusicgenConfig):
        raise ValueError(
            f"{source} holds a {type(config).__name__}, not a MusicgenConfig (MusicGen-Melody is not supported)"
        )
    dec: Any = config.decoder
    text: Any = config.text_encoder
    lm_args = decoder_lm_args(dec)
    text_dim = int(text.d_model)
    decoder = component_state_dict(source, "decoder", **hub)
    state = {f"lm.{k}": v for k, v in decoder_state(decoder, num_layers=dec.num_hidden_layers,
                                                     num_codebooks=dec.num_codebooks).items()}  # fmt: skip
    try:
        proj = component_state_dict(source, "enc_to_dec_proj", **hub)
    except ValueError:  # same widths: transformers feeds the T5 states unprojected
        if text_dim != dec.hidden_size:
            raise
        proj = {"weight": torch.eye(text_dim), "bias": torch.zeros(text_dim)}
    state["text_conditioner.proj.weight"], state["text_conditioner.proj.bias"] = proj["weight"], proj["bias"]
    component = {"model_name_or_path": source, **hub}
    model = {
        "codec": {"class_path": "stylecond.codecs.encodec.EncodecCodec",
                  "init_args": {**component, "component": "audio_encoder"}},
        "lm": {"class_path": "stylecond.lm.music_lm.MusicLM", "init_args": lm_args},
        "text_conditioner": {"class_path": "stylecond.conditioners.text.HFTextConditioner", "init_args": {
            **component, "component": "text_encoder", "encoder_dim": text_dim, "output_dim": lm_args["dim"],
            "max_length": 512, "word_dropout": 0.0}},
        # audiocraft's text2music recipe (a transformers checkpoint does not carry it): all conditions
        # dropped with p 0.3, no per-attribute dropout
        "conditioning_dropout": {"class_path": "stylecond.conditioners.dropout.ConditioningDropout",
                                 "init_args": {"p_all": 0.3, "p_text": 0.0, "p_style": 0.0}},
        "fuser": {"class_path": "stylecond.conditioners.fuser.ConditionFuser",
                  "init_args": {"prefix": [], "cross": ["text"]}},
        "sampling": _generation_defaults(source, **hub),
    }  # fmt: skip
    return {"class_path": MODEL, "init_args": model}, state
