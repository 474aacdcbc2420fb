"""Load one sub-model of a composite transformers checkpoint (e.g. MusicGen's ``text_encoder`` or
``audio_encoder``) without loading the rest: its config from the composite config, its weights from the
tensors named ``<component>.*`` (safetensors, or ``weights_only`` torch files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def resolve_file(source: str, filename: str, *, revision: str | None, local_files_only: bool) -> Path | None:
    """``filename`` of a local directory or a hub repository (downloaded, honouring ``revision``); None if absent."""
    local = Path(source)
    if local.is_dir():
        path = local / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(source, filename, revision=revision, local_files_only=local_files_only))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


def _weight_files(source: str, *, revision: str | None, local_files_only: bool) -> list[Path]:
    for name in WEIGHT_FILES:
        path = resolve_file(source, name, revision=revision, local_files_only=local_files_only)
        if path is None:
            continue
        if name.endswith(".index.json"):
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            files = [
                resolve_file(source, s, revision=revision, local_files_only=local_files_only) for s in shards
            ]
            missing = [s for s, f in zip(shards, files) if f is None]
            if missing:
                raise FileNotFoundError(f"{source}: shards {missing} listed in {name} are missing")
            return [f for f in files if f is not None]
        return [path]
    raise FileNotFoundError(f"{source}: no weights found (looked for {', '.join(WEIGHT_FILES)})")


def component_state_dict(
    source: str, component: str, *, revision: str | None = None, local_files_only: bool = False
) -> dict[str, torch.Tensor]:
    """The tensors of ``source`` named ``<component>.*``, with that prefix removed."""
    from safetensors import safe_open

    prefix = f"{component}."
    out: dict[str, torch.Tensor] = {}
    for path in _weight_files(source, revision=revision, local_files_only=local_files_only):
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a Mapping
                    if key.startswith(prefix):
                        out[key[len(prefix) :]] = f.get_tensor(key)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            out.update({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    if not out:
        raise ValueError(
            f"{source} has no tensors named {prefix}* (is {component!r} a part of this checkpoint?)"
        )
    return out


def load_component(
    source: str, component: str, *, revision: str | None = None, local_files_only: bool = False
) -> nn.Module:
    """Sub-model ``component`` of the composite checkpoint ``source`` (local directory or hub id), built
    from ``config.<component>`` with transformers' ``AutoModel`` (T5 configs: the encoder only) and
    loaded strictly from the ``<component>.*`` tensors. Frozen parts stay float32 on the CPU."""
    from transformers import AutoConfig, AutoModel, T5Config, T5EncoderModel

    config = AutoConfig.from_pretrained(source, revision=revision, local_files_only=local_files_only)
    sub: Any = getattr(config, component, None)
    if sub is None or not hasattr(sub, "model_type"):
        raise ValueError(f"{source}: its {type(config).__name__} has no sub-model config {component!r}")
    model: nn.Module = T5EncoderModel(sub) if isinstance(sub, T5Config) else AutoModel.from_config(sub)
    state = component_state_dict(source, component, revision=revision, local_files_only=local_files_only)
    expected = set(model.state_dict())
    tied = {k for k in expected - set(state) if k.endswith("embed_tokens.weight")}  # T5 ties them to shared
    missing = sorted(expected - set(state) - tied)
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{source}: the {component}.* tensors do not fit {type(model).__name__}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    model.load_state_dict(state, strict=False)
    tie = getattr(model, "tie_weights", None)
    if callable(tie):
        tie()
    return model.float().eval()
