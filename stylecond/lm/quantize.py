"""Opt-in int8 dynamic quantization of a model's linear layers for CPU decoding.

Decoding a :class:`~stylecond.lm.music_lm.MusicLM` on a CPU streams every linear weight once per step, so
its speed is set by the bytes read: int8 weights read 4x fewer bytes than float32. This wraps
``torch.ao.quantization.quantize_dynamic``: weights are stored as int8 (per output channel scales by
default), activations are quantized on the fly at each call, outputs are float32. Embeddings and layer
norms stay in float32. It changes the numbers (not bit-exact with float32): use it for inference only.
"""

from __future__ import annotations

import copy
import warnings
from typing import TypeVar

import torch
from torch import nn

__all__ = ["quantize_int8"]

M = TypeVar("M", bound=nn.Module)


def quantize_int8(model: M, *, per_channel: bool = True, inplace: bool = False) -> M:
    """Return ``model`` with every ``nn.Linear`` replaced by an int8 dynamically quantized one (CPU only).

    Args:
        model: a float32 module on the CPU (e.g. a ``MusicLM``), put in eval mode.
        per_channel: one weight scale per output channel (more accurate) instead of one per tensor.
        inplace: modify ``model`` itself instead of a deep copy.

    Raises:
        ValueError: if the model is not float32 on the CPU or has no linear layer.
    """
    params = [p for p in model.parameters() if p.is_floating_point()]
    if any(p.device.type != "cpu" for p in params):
        raise ValueError("quantize_int8: model must be on the CPU (int8 dynamic quantization is CPU-only)")
    if any(p.dtype != torch.float32 for p in params):
        raise ValueError(
            f"quantize_int8: model must be float32, got {sorted({str(p.dtype) for p in params})}"
        )
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise ValueError("quantize_int8: model has no nn.Linear layer to quantize")
    if "qnnpack" not in torch.backends.quantized.supported_engines and not (
        {"fbgemm", "x86", "onednn"} & set(torch.backends.quantized.supported_engines)
    ):
        raise ValueError("quantize_int8: this torch build has no quantized CPU engine")
    target = model if inplace else copy.deepcopy(model)
    target.eval()
    qconfig = (
        torch.ao.quantization.per_channel_dynamic_qconfig
        if per_channel
        else torch.ao.quantization.default_dynamic_qconfig
    )
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao (not a dep)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_(tensor|channel).*")
        out = torch.ao.quantization.quantize_dynamic(
            target, qconfig_spec={nn.Linear: qconfig}, dtype=torch.qint8, inplace=True
        )
    assert out is target
    return target
