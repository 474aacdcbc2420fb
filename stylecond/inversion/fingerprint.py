"""Fingerprints of a base model, so learned inversion vectors are only loaded into the model they fit."""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

import torch
from torch import nn


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def model_description(model: Any) -> dict[str, Any]:
    """What the fingerprint hashes: the model's config plus LM, text-conditioner and codec identities."""
    lm = model.lm
    text = getattr(model, "text_conditioner", None)
    codec = getattr(model, "codec", None)
    desc: dict[str, Any] = {
        "model_config": getattr(model, "model_config", None),
        "lm": {
            "class": type(lm).__name__,
            "num_codebooks": int(lm.num_codebooks),
            "card": int(lm.card),
            "dim": int(lm.dim),
            "num_parameters": int(sum(p.numel() for p in lm.parameters())),
        },
        "text": None,
        "codec": None if codec is None else str(codec.codec_id),
    }
    if text is not None:
        desc["text"] = {
            "class": type(text).__name__,
            "model_name_or_path": str(getattr(text, "model_name_or_path", "")),
            "encoder_dim": int(text.encoder_dim),
            "output_dim": int(text.output_dim),
        }
    return desc


def config_fingerprint(model: Any) -> str:
    """sha256 (hex) of the canonical JSON of :func:`model_description`."""
    return hashlib.sha256(_canonical(model_description(model)).encode()).hexdigest()


def weights_digest(model: Any) -> str:
    """sha256 (hex) of a few trained tensors (text projection, first LM head, first LM embedding).

    Tells apart two models of the same config trained differently; cheap even for large models.
    """
    digest = hashlib.sha256()
    tensors: list[torch.Tensor] = []
    text = getattr(model, "text_conditioner", None)
    if text is not None and isinstance(getattr(text, "proj", None), nn.Linear):
        tensors.append(text.proj.weight)
    lm = model.lm
    for attr in ("heads", "embeddings"):
        seq = getattr(lm, attr, None)
        if (
            isinstance(seq, nn.ModuleList)
            and len(seq)
            and isinstance(getattr(seq[0], "weight", None), torch.Tensor)
        ):
            tensors.append(cast(torch.Tensor, seq[0].weight))
    for t in tensors:
        digest.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
