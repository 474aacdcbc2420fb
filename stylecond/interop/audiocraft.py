"""Meta's released audiocraft models (MusicGen-Style, MusicGen) -> :class:`StyleMusicGen`.

An audiocraft release is a directory (or hub repository) with ``state_dict.bin`` (``best_state``: the
LM, the conditioners' trainable parts and the RVQ buffers; ``xp.cfg``: the training config as YAML) and
``compression_state_dict.bin`` (for released models a pointer such as
``{'pretrained': 'facebook/encodec_32khz'}``, which audiocraft itself resolves to transformers'
``EncodecModel``). Both are read with ``torch.load(weights_only=True)``: a file that needs pickle is
refused. T5, MERT and EnCodec are not in these files; they load by hub name (or the paths you pass).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylecond.interop.audiocraft_config import UnsupportedAudiocraftModel, XpConfig, model_config

LM_FILE = "state_dict.bin"
CODEC_FILE = "compression_state_dict.bin"
_P = "condition_provider.conditioners."
_STYLE, _TEXT = f"{_P}self_wav.", f"{_P}description."


def read_package(path: Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True, mmap=True)`` with one clear error naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        try:
            package = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            package = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} needs pickle to load (it holds Python objects, not only tensors); stylecond loads "
            "only weights_only files and has no unsafe fallback"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable torch file (truncated or corrupt?): {err}") from err
    if not isinstance(package, dict):
        raise ValueError(f"{path} holds a {type(package).__name__}, not an audiocraft export dict")
    return package


def codec_config(package: Mapping[str, Any], *, path: Path, **over: Any) -> dict[str, Any]:
    """The ``EncodecCodec`` config of ``compression_state_dict.bin``: a pointer to a pretrained model."""
    if "pretrained" in package:
        name = str(package["pretrained"])
        if name.startswith(("dac_", "debug_compression_model")):
            raise UnsupportedAudiocraftModel(
                f"{path}: compression model {name!r} is not supported (EnCodec only)"
            )
        return {"class_path": "stylecond.codecs.encodec.EncodecCodec", "init_args": {
            "model_name_or_path": over.get("encodec") or name, "revision": over.get("encodec_revision"),
            "local_files_only": bool(over.get("local_files_only", False))}}  # fmt: skip
    if "best_state" in package:
        raise UnsupportedAudiocraftModel(
            f"{path} holds a full audiocraft compression model; stylecond loads EnCodec through transformers "
            "and supports pointer files such as {'pretrained': 'facebook/encodec_32khz'}: pass encodec=<hub name "
            "or path of the transformers EncodecModel it was converted to>"
        )
    raise ValueError(f"{path} is neither a compression pointer ('pretrained') nor an export ('best_state')")


_LAYER = re.compile(r"^transformer\.layers\.(\d+)\.(.+)$")


def _layer_keys(name: str, value: Tensor, dst: str) -> Iterator[tuple[str, Tensor]]:
    """audiocraft's StreamingTransformerLayer tensor ``name`` -> ours, under ``dst`` (``...layers.{i}.``)."""
    if name == "self_attn.in_proj_weight":
        yield f"{dst}self_attn.in_proj.weight", value
    elif name == "self_attn.in_proj_bias":
        yield f"{dst}self_attn.in_proj.bias", value
    elif name.startswith("cross_attention."):
        rest = name[len("cross_attention.") :]
        if rest in ("in_proj_weight", "in_proj_bias"):
            d = value.shape[0] // 3
            kind = "weight" if rest.endswith("weight") else "bias"
            yield f"{dst}cross_attn.q_proj.{kind}", value[:d]
            yield f"{dst}cross_attn.kv_proj.{kind}", value[d:]
        else:
            yield f"{dst}cross_attn.{rest}", value
    else:  # self_attn.out_proj.*, linear1/2.*, norm1/2.*, norm_cross.*
        yield dst + name, value


def map_state(best_state: Mapping[str, Tensor], *, path: Path) -> dict[str, Tensor]:
    """audiocraft ``best_state`` names -> :class:`StyleMusicGen` state-dict names (values untouched)."""
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in best_state.items():
        if key.startswith(_STYLE):
            rest, dst = key[len(_STYLE) :], "style_conditioner."
            m = re.match(r"^rvq\.vq\.layers\.(\d+)\._codebook\.(\w+)$", rest)
            if m:
                out[f"{dst}rvq.layers.{m.group(1)}.{m.group(2)}"] = value
            elif rest.startswith("transformer.layers."):
                lm = _LAYER.match(rest)
                assert lm is not None
                out.update(_layer_keys(lm.group(2), value, f"{dst}encoder.layers.{lm.group(1)}."))
            elif rest.startswith("embed."):
                sub = rest[len("embed.") :]
                name = f"extractor.embeddings.{sub}" if sub[0].isdigit() else f"input_proj.{sub}"
                out[dst + name] = value
            elif rest.startswith(("batch_norm.", "output_proj.")):
                out[dst + rest] = value
            else:
                unknown.append(key)
        elif key.startswith(_TEXT):
            rest = key[len(_TEXT) :]
            if rest.startswith("output_proj."):
                out[f"text_conditioner.proj.{rest[len('output_proj.') :]}"] = value
            else:
                unknown.append(key)
        elif key.startswith("emb."):
            out[f"lm.embeddings.{key[len('emb.') :]}"] = value
        elif key.startswith("linears."):
            out[f"lm.heads.{key[len('linears.') :]}"] = value
        elif key.startswith("out_norm."):
            out[f"lm.transformer.{key}"] = value
        elif (m2 := _LAYER.match(key)) is not None:
            out.update(_layer_keys(m2.group(2), value, f"lm.transformer.layers.{m2.group(1)}."))
        else:
            unknown.append(key)
    if unknown:
        raise UnsupportedAudiocraftModel(f"{path}: best_state tensors stylecond cannot place: {unknown[:8]}")
    if any(k.startswith("style_conditioner.rvq.") for k in out):
        out["style_conditioner.rvq.draws"] = torch.zeros((), dtype=torch.long)
    return out


def read_audiocraft(directory: Path, **over: Any) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(stylecond config, mapped state dict)`` of the audiocraft export in ``directory`` (tensors stay
    memory-mapped: nothing is copied)."""
    lm_path, codec_path = directory / LM_FILE, directory / CODEC_FILE
    package = read_package(lm_path)
    for field in ("best_state", "xp.cfg"):
        if field not in package:
            raise ValueError(f"{lm_path} has no {field!r}: it is not an audiocraft export (export_lm)")
    best = package["best_state"]
    if isinstance(best, Mapping) and "model" in best and not isinstance(best["model"], Tensor):
        best = best["model"]  # a training checkpoint's best_state
    cfg_text = package["xp.cfg"]
    if not isinstance(cfg_text, str):
        raise ValueError(f"{lm_path}: xp.cfg must be YAML text, got {type(cfg_text).__name__}")
    cfg = XpConfig(cfg_text, source=str(lm_path))
    codec = codec_config(read_package(codec_path), path=codec_path, **over)
    config = model_config(cfg, best, codec, **over)
    return config, map_state(best, path=lm_path)
