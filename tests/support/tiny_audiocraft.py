"""Tiny exports in audiocraft's released layout, written without audiocraft (for the main test suite).

``state_dict.bin`` = ``{'best_state': {name: tensor}, 'xp.cfg': YAML text, 'version', 'exported'}`` and
``compression_state_dict.bin`` = ``{'pretrained': 'facebook/encodec_32khz', ...}``, with the tensor names
and shapes of audiocraft 1.4's ``LMModel`` (MusicGen-Style: ``self_wav`` style conditioner + ``description``
T5; MusicGen: ``description`` through cross-attention). This exercises the loader's file handling, config
reading and errors; ``make test-reference`` proves the layout and the outputs against audiocraft itself.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import yaml

STYLE_SCALES = {
    "xsmall": (256, 4),
    "default": (512, 8),
    "large": (1024, 24),
    "none": (512, 0),
}  # width, layers


def xp_config(*, style: bool = True, style_scale: str = "xsmall", dim: int = 64, n_q: int = 2, card: int = 32,
              num_layers: int = 2, n_q_out: int = 3, eval_q: int = 2, bins: int = 16) -> dict[str, Any]:  # fmt: skip
    """An ``xp.cfg`` with the released config's keys at tiny sizes (interpolations left unresolved)."""
    cfg: dict[str, Any] = {
        "device": "cpu", "dtype": "float32", "solver": "musicgen", "sample_rate": 32000, "channels": 1,
        "compression_model_checkpoint": "//pretrained/facebook/encodec_32khz", "lm_model": "transformer_lm",
        "compression_model_n_q": None, "interleave_stereo_codebooks": {"use": False, "per_timestep": False},
        "dataset": {"segment_duration": 30},
        "codebooks_pattern": {"modeling": "delay", "delay": {"delays": list(range(n_q)), "flatten_first": 0,
                                                             "empty_initial": 0}},
        "transformer_lm": {
            "dim": dim, "num_heads": 2, "num_layers": num_layers, "hidden_scale": 4, "n_q": n_q, "card": card,
            "dropout": 0.0, "activation": "gelu", "norm_first": True, "bias_ff": False, "bias_attn": False,
            "bias_proj": False, "past_context": None, "causal": True, "custom": False, "memory_efficient": True,
            "layer_scale": None, "positional_embedding": "sin", "xpos": False, "norm": "layer_norm",
            "cross_attention": not style, "qk_layer_norm": False, "qk_layer_norm_cross": False, "kv_repeat": 1,
            "emb_lr": None, "weight_init": "gaussian", "depthwise_init": "current", "zero_bias_init": True,
            "checkpointing": "none", "attention_as_float32": False, "attention_dropout": None,
            "two_step_cfg": False,
        },
        "classifier_free_guidance": {"training_dropout": 0.1 if style else 0.3, "inference_coef": 3.0},
        "attribute_dropout": ({"args": {"active_on_eval": False}, "text": {"description": 0.4},
                               "wav": {"self_wav": 0.4}} if style else {}),
        "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1, "sum": [],
                  "prepend": ["self_wav", "description"] if style else [],
                  "cross": [] if style else ["description"], "input_interpolate": []},
        "conditioners": {"description": {"model": "t5", "t5": {"name": "t5-base", "finetune": False,
                                                                "word_dropout": 0.2, "normalize_text": False}}},
        "generate": {"lm": {"use_sampling": True, "temp": 1.0, "top_k": 250, "top_p": 0.0, "cfg_coef": 3.0,
                            "cfg_coef_beta": None}},
    }  # fmt: skip
    if style:
        cfg["conditioners"]["self_wav"] = {"model": "style", "style": {
            "model_name": "mert", "transformer_scale": style_scale, "sample_rate": "${sample_rate}",
            "encodec_checkpoint": "//pretrained/facebook/encodec_32khz", "encodec_n_q": 3, "length": 3.0,
            "ds_factor": 15, "n_q_out": n_q_out, "eval_q": eval_q, "q_dropout": True, "bins": bins,
            "varying_lengths": [1.5, 4.5], "batch_norm": True, "compute_mask": True,
            "num_codebooks_lm": "${transformer_lm.n_q}", "ds_rate_compression": 640,
            "use_middle_of_segment": False, "rvq_threshold_ema_dead_code": 0.1}}  # fmt: skip
    return cfg


def _layer(
    prefix: str, d: int, ffn: int, g: torch.Generator, *, cross: bool = False
) -> dict[str, torch.Tensor]:
    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) / max(shape[-1], 1) ** 0.5

    out = {
        f"{prefix}self_attn.in_proj_weight": rand(3 * d, d), f"{prefix}self_attn.out_proj.weight": rand(d, d),
        f"{prefix}linear1.weight": rand(ffn, d), f"{prefix}linear2.weight": rand(d, ffn),
    }  # fmt: skip
    norms = ["norm1", "norm2", *(["norm_cross"] if cross else [])]
    if cross:
        out[f"{prefix}cross_attention.in_proj_weight"] = rand(3 * d, d)
        out[f"{prefix}cross_attention.out_proj.weight"] = rand(d, d)
    for n in norms:
        out[f"{prefix}{n}.weight"] = 1 + 0.1 * torch.randn(d, generator=g)
        out[f"{prefix}{n}.bias"] = 0.1 * torch.randn(d, generator=g)
    return out


def best_state(
    cfg: dict[str, Any], *, seed: int = 0, t5_dim: int = 768, mert_dim: int = 768
) -> dict[str, torch.Tensor]:
    """Random tensors named and shaped as audiocraft's ``LMModel.state_dict()`` for ``cfg``."""
    g = torch.Generator().manual_seed(seed)
    t = cfg["transformer_lm"]
    dim, card, n_q = t["dim"], t["card"], t["n_q"]
    ffn = t["hidden_scale"] * dim
    out: dict[str, torch.Tensor] = {}
    p = "condition_provider.conditioners."
    style = cfg["conditioners"].get("self_wav")
    if style:
        s = style["style"]
        d, layers = STYLE_SCALES[s["transformer_scale"]]
        out[f"{p}self_wav.output_proj.weight"] = torch.randn(dim, d, generator=g) / d**0.5
        out[f"{p}self_wav.output_proj.bias"] = 0.1 * torch.randn(dim, generator=g)
        out[f"{p}self_wav.embed.weight"] = torch.randn(d, mert_dim, generator=g) / mert_dim**0.5
        out[f"{p}self_wav.embed.bias"] = 0.1 * torch.randn(d, generator=g)
        for i in range(layers):
            out.update(_layer(f"{p}self_wav.transformer.layers.{i}.", d, 4 * d, g))
        for j in range(s["n_q_out"]):
            c = f"{p}self_wav.rvq.vq.layers.{j}._codebook."
            out[c + "inited"] = torch.ones(1)
            out[c + "cluster_size"] = torch.rand(s["bins"], generator=g)
            out[c + "embed"] = torch.randn(s["bins"], d, generator=g)
            out[c + "embed_avg"] = torch.randn(s["bins"], d, generator=g)
        out[f"{p}self_wav.batch_norm.running_mean"] = 0.1 * torch.randn(d, generator=g)
        out[f"{p}self_wav.batch_norm.running_var"] = 0.5 + torch.rand(d, generator=g)
        out[f"{p}self_wav.batch_norm.num_batches_tracked"] = torch.tensor(1000)
    out[f"{p}description.output_proj.weight"] = torch.randn(dim, t5_dim, generator=g) / t5_dim**0.5
    out[f"{p}description.output_proj.bias"] = 0.1 * torch.randn(dim, generator=g)
    for k in range(n_q):
        out[f"emb.{k}.weight"] = torch.randn(card + 1, dim, generator=g)
    for i in range(t["num_layers"]):
        out.update(_layer(f"transformer.layers.{i}.", dim, ffn, g, cross=bool(t["cross_attention"])))
    out["out_norm.weight"] = 1 + 0.1 * torch.randn(dim, generator=g)
    out["out_norm.bias"] = 0.1 * torch.randn(dim, generator=g)
    for k in range(n_q):
        out[f"linears.{k}.weight"] = torch.randn(card, dim, generator=g) / dim**0.5
    return out


def write_export(out: Path, cfg: dict[str, Any], state: dict[str, torch.Tensor], *,
                 compression: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """``out/state_dict.bin`` + ``out/compression_state_dict.bin`` as audiocraft's exporters write them."""
    out.mkdir(parents=True, exist_ok=True)
    package = {"best_state": state, "xp.cfg": yaml.safe_dump(copy.deepcopy(cfg), sort_keys=False),
               "version": "1.4.0a2", "exported": True}  # fmt: skip
    torch.save(package, out / "state_dict.bin")
    pointer = compression or {"pretrained": "facebook/encodec_32khz", "exported": True, "version": "1.4.0a2"}
    torch.save(pointer, out / "compression_state_dict.bin")
    return out
