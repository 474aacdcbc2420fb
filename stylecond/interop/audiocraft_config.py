"""audiocraft's training config (``xp.cfg``) -> a stylecond ``StyleMusicGen`` config (``class_path`` / ``init_args``).

Every size, option and default is read from ``xp.cfg`` (and, where audiocraft derives it from a weight,
from that weight's shape), never guessed. An option stylecond does not implement raises
:class:`UnsupportedAudiocraftModel` naming the config key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
import yaml

MODEL = "stylecond.models.style_musicgen.StyleMusicGen"
_INTERPOLATION = re.compile(r"\$\{([^}]+)\}")

#: audiocraft's style transformer sizes by ``transformer_scale``: (dim, heads, layers)
_STYLE_SCALES = {"xsmall": (256, 8, 4), "default": (512, 8, 8), "large": (1024, 16, 24), "none": (512, 8, 0)}
#: audiocraft's condition names -> stylecond's
_NAMES = {"description": "text", "self_wav": "style"}
_PRETRAINED = "//pretrained/"


class UnsupportedAudiocraftModel(ValueError):
    """The audiocraft model uses an option stylecond does not implement (the message names the key)."""


class XpConfig:
    """``xp.cfg`` (YAML text) with ``${a.b}`` interpolations resolved on access (only what is read)."""

    def __init__(self, text: str, *, source: str) -> None:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"{source}: xp.cfg is not valid YAML ({err})") from err
        if not isinstance(data, dict):
            raise ValueError(f"{source}: xp.cfg must be a mapping, got {type(data).__name__}")
        self.data, self.source = data, source

    def get(self, path: str, default: Any = ...) -> Any:
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if default is ...:
                    raise ValueError(f"{self.source}: xp.cfg has no {path!r}")
                return default
            node = node[part]
        return self._resolve(node, seen=(path,))

    def _resolve(self, value: Any, *, seen: tuple[str, ...]) -> Any:
        if isinstance(value, Mapping):
            return {k: self._resolve(v, seen=seen) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v, seen=seen) for v in value]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = _INTERPOLATION.fullmatch(value)
        if whole is not None:
            ref = whole.group(1)
            if ref in seen or ":" in ref:
                raise ValueError(f"{self.source}: xp.cfg interpolation {value!r} cannot be resolved")
            return self._resolve(self.get(ref), seen=(*seen, ref))
        return _INTERPOLATION.sub(lambda m: str(self._resolve("${" + m.group(1) + "}", seen=seen)), value)


def _pretrained_name(checkpoint: str, key: str) -> str:
    """``//pretrained/facebook/encodec_32khz`` -> ``facebook/encodec_32khz``."""
    if not checkpoint.startswith(_PRETRAINED):
        raise UnsupportedAudiocraftModel(
            f"{key}={checkpoint!r}: only //pretrained/<hub name> codecs are supported"
        )
    return checkpoint[len(_PRETRAINED) :]


def _require(cfg: XpConfig, key: str, allowed: Any) -> Any:
    value = cfg.get(key, None)
    ok = value in allowed if isinstance(allowed, (tuple, list, set)) else value == allowed
    if not ok:
        raise UnsupportedAudiocraftModel(
            f"{cfg.source}: xp.cfg {key}={value!r} is not supported (supported: {allowed!r})"
        )
    return value


def lm_config(cfg: XpConfig, *, cross_attention: bool, cross_dim: int | None) -> dict[str, Any]:
    t = "transformer_lm"
    for key, allowed in (
        ("norm", "layer_norm"), ("norm_first", True), ("positional_embedding", "sin"), ("layer_scale", None),
        ("causal", True), ("past_context", None), ("xpos", False), ("qk_layer_norm", False),
        ("qk_layer_norm_cross", False), ("kv_repeat", (1, None)), ("activation", "gelu"),
    ):  # fmt: skip
        _require(cfg, f"{t}.{key}", allowed)
    biases = {k: bool(cfg.get(f"{t}.{k}", False)) for k in ("bias_attn", "bias_ff", "bias_proj")}
    if biases["bias_proj"] or biases["bias_attn"] != biases["bias_ff"]:
        raise UnsupportedAudiocraftModel(f"{cfg.source}: xp.cfg {t} biases {biases} are not supported")
    if bool(cfg.get("fuser.cross_attention_pos_emb", False)):
        raise UnsupportedAudiocraftModel(
            f"{cfg.source}: xp.cfg fuser.cross_attention_pos_emb=true is not supported"
        )
    n_q, dim = int(cfg.get(f"{t}.n_q")), int(cfg.get(f"{t}.dim"))
    modeling = _require(cfg, "codebooks_pattern.modeling", ("delay", "parallel"))
    if modeling == "delay":
        delays = [int(d) for d in cfg.get("codebooks_pattern.delay.delays")]
        for key in ("flatten_first", "empty_initial"):
            _require(cfg, f"codebooks_pattern.delay.{key}", (0, None))
        pattern = {"class_path": "stylecond.lm.patterns.DelayPattern", "init_args": {"delays": delays[:n_q]}}
    else:
        pattern = {"class_path": "stylecond.lm.patterns.ParallelPattern", "init_args": {}}
    args = {
        "num_codebooks": n_q,
        "card": int(cfg.get(f"{t}.card")),
        "dim": dim,
        "num_heads": int(cfg.get(f"{t}.num_heads")),
        "num_layers": int(cfg.get(f"{t}.num_layers")),
        "ffn_dim": int(float(cfg.get(f"{t}.hidden_scale", 4)) * dim),
        "dropout": float(cfg.get(f"{t}.dropout", 0.0)),
        "pattern": pattern,
        "cross_attention": cross_attention,
        "bias": biases["bias_attn"],
        "norm_bias": True,
        "norm_eps": 1e-5,
        "max_period": float(cfg.get(f"{t}.max_period", 10000.0)),
        "condition_masks": False,  # audiocraft attends to every condition token, null ones included
    }
    if cross_attention:
        args["cross_dim"] = cross_dim or dim
    return {"class_path": "stylecond.lm.music_lm.MusicLM", "init_args": args}


def text_config(
    cfg: XpConfig, name: str, state: Mapping[str, torch.Tensor], dim: int, **over: Any
) -> dict[str, Any]:
    key = f"conditioners.{name}"
    _require(cfg, f"{key}.model", "t5")
    t5 = cfg.get(f"{key}.t5")
    if t5.get("finetune") or t5.get("normalize_text"):
        raise UnsupportedAudiocraftModel(
            f"{cfg.source}: xp.cfg {key}.t5 finetune/normalize_text are not supported"
        )
    weight = state[f"condition_provider.conditioners.{name}.output_proj.weight"]
    args = {
        "model_name_or_path": over.get("t5") or t5["name"],
        "encoder_dim": int(weight.shape[1]),
        "output_dim": dim,
        "max_length": 512,  # audiocraft does not truncate captions
        "word_dropout": float(t5.get("word_dropout", 0.0)),
        "revision": over.get("t5_revision"),
        "local_files_only": bool(over.get("local_files_only", False)),
    }
    return {"class_path": "stylecond.conditioners.text.HFTextConditioner", "init_args": args}


def style_config(
    cfg: XpConfig, name: str, state: Mapping[str, torch.Tensor], dim: int, **over: Any
) -> dict[str, Any]:
    key = f"conditioners.{name}"
    model = cfg.get(f"{key}.model")
    if model != "style":
        raise UnsupportedAudiocraftModel(
            f"{cfg.source}: xp.cfg {key}.model={model!r} (e.g. melody's chroma_stem) is not supported; "
            "stylecond supports the 'style' audio conditioner"
        )
    s = cfg.get(f"{key}.style")
    scale = s.get("transformer_scale", "default")
    if scale not in _STYLE_SCALES:
        raise UnsupportedAudiocraftModel(f"{cfg.source}: xp.cfg {key}.style.transformer_scale={scale!r}")
    width, heads, layers = _STYLE_SCALES[scale]
    local = bool(over.get("local_files_only", False))
    if s.get("model_name", "mert") == "mert":
        extractor = {"class_path": "stylecond.features.hf_encoder.HFAudioEncoderFeatures", "init_args": {
            "model_name_or_path": over.get("mert") or "m-a-p/MERT-v1-95M", "layer": -1, "sample_rate": 24000,
            "frame_rate": 75.0, "dim": int(state[f"condition_provider.conditioners.{name}.embed.weight"].shape[1]),
            "normalize_input": False, "revision": over.get("mert_revision"), "local_files_only": local}}  # fmt: skip
        input_proj = True
    elif s.get("model_name") == "encodec":
        codec = {"class_path": "stylecond.codecs.encodec.EncodecCodec", "init_args": {
            "model_name_or_path": over.get("encodec") or _pretrained_name(s["encodec_checkpoint"], f"{key}.style.encodec_checkpoint"),
            "local_files_only": local}}  # fmt: skip
        extractor = {"class_path": "stylecond.features.encodec_features.EncodecFeatures",
                     "init_args": {"codec": codec, "num_codebooks": int(s.get("encodec_n_q", 4)), "dim": width}}  # fmt: skip
        input_proj = False
    else:
        raise UnsupportedAudiocraftModel(
            f"{cfg.source}: xp.cfg {key}.style.model_name={s.get('model_name')!r}"
        )
    lo, hi = (float(x) for x in s.get("varying_lengths", [1.5, 4.5]))
    args = {
        "extractor": extractor, "output_dim": dim, "dim": width, "num_layers": layers, "num_heads": heads,
        "ffn_dim": 4 * width, "dropout": 0.1, "sinusoidal_positions": layers > 0, "position_spacing": "musicgen",
        "bias": False, "final_norm": False, "input_proj": input_proj, "batch_norm": bool(s.get("batch_norm", True)),
        "num_codebooks": int(s.get("n_q_out", 6)), "codebook_size": int(s.get("bins", 1024)),
        "eval_q": int(s.get("eval_q", 3)), "ds_factor": int(s.get("ds_factor", 15)), "excerpt_min": lo,
        "excerpt_max": hi, "excerpt_length": float(s.get("length", 3.0)),
        "excerpt_start": "middle" if s.get("use_middle_of_segment", False) else "random",
        "threshold_ema_dead_code": float(s.get("rvq_threshold_ema_dead_code", 0.1)),
    }  # fmt: skip
    return {"class_path": "stylecond.conditioners.style.StyleConditioner", "init_args": args}


def model_config(
    cfg: XpConfig, state: Mapping[str, torch.Tensor], codec: dict[str, Any], **over: Any
) -> dict[str, Any]:
    """The stylecond config of the audiocraft LM described by ``cfg`` whose weights are ``state``."""
    _require(cfg, "lm_model", "transformer_lm")
    fuser = cfg.get("fuser")
    for kind in ("sum", "input_interpolate"):
        if fuser.get(kind):
            raise UnsupportedAudiocraftModel(
                f"{cfg.source}: xp.cfg fuser.{kind}={fuser[kind]} is not supported"
            )
    conditioners = cfg.get("conditioners", {}) or {}
    unknown = sorted(set(conditioners) - set(_NAMES) - {"args"})
    if unknown:
        raise UnsupportedAudiocraftModel(f"{cfg.source}: xp.cfg conditioners {unknown} are not supported")
    routed = list(fuser.get("prepend", [])) + list(fuser.get("cross", []))
    missing = sorted(set(routed) - set(conditioners))
    if missing:
        raise ValueError(f"{cfg.source}: xp.cfg fuser routes {missing}, which no conditioner defines")
    dim = int(cfg.get("transformer_lm.dim"))
    cross = [_NAMES[n] for n in fuser.get("cross", [])]
    # audiocraft prepends in the order its provider emits conditions (text, then wav), each in front of
    # the previous: the LM input is [self_wav | description | audio] whatever the list order
    prefix = [_NAMES[n] for n in ("self_wav", "description") if n in fuser.get("prepend", [])]
    args: dict[str, Any] = {"codec": codec, "lm": lm_config(cfg, cross_attention=bool(cross), cross_dim=dim)}
    if "description" in conditioners:
        args["text_conditioner"] = text_config(cfg, "description", state, dim, **over)
    if "self_wav" in conditioners:
        args["style_conditioner"] = style_config(cfg, "self_wav", state, dim, **over)
    drop = cfg.get("attribute_dropout", {}) or {}
    args["conditioning_dropout"] = {"class_path": "stylecond.conditioners.dropout.ConditioningDropout", "init_args": {
        "p_all": float(cfg.get("classifier_free_guidance.training_dropout", 0.0)),
        "p_text": float((drop.get("text") or {}).get("description", 0.0)),
        "p_style": float((drop.get("wav") or {}).get("self_wav", 0.0))}}  # fmt: skip
    args["fuser"] = {"class_path": "stylecond.conditioners.fuser.ConditionFuser", "init_args": {"prefix": prefix, "cross": cross}}  # fmt: skip
    generate = cfg.get("generate.lm", {}) or {}
    beta = generate.get("cfg_coef_beta")
    args["sampling"] = {
        "cfg_coef": float(cfg.get("classifier_free_guidance.inference_coef", 3.0)),
        # None (audiocraft's default): plain CFG unless beta is asked for (MusicGen-Style's docs use 5)
        "cfg_coef_beta": None if beta is None else float(beta),
        "top_k": int(generate.get("top_k", 250)), "top_p": float(generate.get("top_p", 0.0)),
        "temperature": float(generate.get("temp", 1.0)),
    }  # fmt: skip
    segment = cfg.get("dataset.segment_duration", None)  # the training segment: generate()'s window
    if segment is not None:
        args["window_seconds"] = float(segment)
    return {"class_path": MODEL, "init_args": args}
