"""Opt-in weight quantization of a model's linear layers for CPU decoding: one entry point, three modes.

Decoding a :class:`~stylecond.lm.music_lm.MusicLM` on a CPU streams every linear weight once per step, so
its speed is set by the bytes read. :func:`quantize` replaces each ``nn.Linear``:

- ``"int4"``: 4-bit weights, one scale and offset per 128 inputs, bfloat16 activations
  (:class:`~stylecond.lm.lowbit_linear.Int4Linear`): 8x fewer bytes than float32;
- ``"int8"``: int8 weights, one scale per output channel, bfloat16 activations
  (:class:`~stylecond.lm.lowbit_linear.Int8Linear`);
- ``"int8-dynamic"``: ``torch.ao.quantization.quantize_dynamic`` (fbgemm): int8 weights, activations
  quantized on the fly at each call.

Embeddings (only K rows are read per step) and layer norms stay float32, and so do the K output heads
(a module named ``heads``) unless ``quantize_heads=True``. Measured on the demo model
(``benchmarks/quality_guard.py``, 200 guided steps, two seeds): keeping the heads in float32 cut the mean KL to
float32 from 0.016-0.025 to 0.005-0.010 nats (int4) and from 0.006-0.010 to 0.001-0.002 (int8); at the
small size they are 3 % of the weights, about 1.6 ms of a step in float32. It changes the numbers (not
bit-exact with float32): use it for inference only. ``benchmarks/bench_generate.py`` measures speed and
the agreement with float32 decoding.
"""

from __future__ import annotations

import copy
import warnings
from typing import Literal, TypeVar, get_args

import torch
from torch import nn

from stylecond.lm.lowbit_linear import Int4Linear, Int8Linear

__all__ = ["QUANTIZE_MODES", "QuantizeMode", "quantize", "quantize_int8"]

M = TypeVar("M", bound=nn.Module)
QuantizeMode = Literal["int4", "int8", "int8-dynamic"]
QUANTIZE_MODES: tuple[str, ...] = get_args(QuantizeMode)


def _check_model(model: nn.Module, mode: str) -> None:
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize mode must be one of {', '.join(QUANTIZE_MODES)}; got {mode!r}")
    params = [p for p in model.parameters() if p.is_floating_point()]
    if any(p.device.type != "cpu" for p in params):
        raise ValueError(f"quantize {mode}: the model must be on the CPU (these kernels are CPU kernels)")
    if any(p.dtype != torch.float32 for p in params):
        raise ValueError(
            f"quantize {mode}: the model must be float32, got {sorted({str(p.dtype) for p in params})}"
        )
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise ValueError(f"quantize {mode}: the model has no nn.Linear layer to quantize")


def _dynamic_int8(model: M, skip: set[str]) -> M:
    engines = set(torch.backends.quantized.supported_engines)
    if not {"qnnpack", "fbgemm", "x86", "onednn"} & engines:
        raise ValueError("quantize int8-dynamic: this torch build has no quantized CPU engine")
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao (not a dep)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_(tensor|channel).*")
        out = torch.ao.quantization.quantize_dynamic(
            model, qconfig_spec={name: torch.ao.quantization.per_channel_dynamic_qconfig for name in _linears(model, skip)},
            dtype=torch.qint8, inplace=True,
        )  # fmt: skip
    assert out is model
    return model


def _linears(model: nn.Module, skip: set[str]) -> list[str]:
    """Qualified names of the ``nn.Linear`` layers to quantize: all but those under a child named in ``skip``."""
    return [
        name
        for name, m in model.named_modules()
        if type(m) is nn.Linear and not set(name.split(".")[:-1]) & skip and name.split(".")[-1] not in skip
    ]


def _replace_linears(
    model: nn.Module, names: list[str], make: type[Int4Linear] | type[Int8Linear], group_size: int
) -> None:
    for name in names:
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        child = parent.get_submodule(child_name)
        assert isinstance(child, nn.Linear)
        layer = make(child, group_size=group_size) if make is Int4Linear else make(child)  # type: ignore[call-arg]
        setattr(parent, child_name, layer)


def quantize(
    model: M,
    mode: QuantizeMode,
    *,
    group_size: int = 128,
    quantize_heads: bool = False,
    inplace: bool = False,
) -> M:
    """Return ``model`` (eval mode) with every ``nn.Linear`` quantized by ``mode`` (CPU only).

    Args:
        model: a float32 module on the CPU (e.g. ``StyleMusicGen.lm``).
        mode: ``"int4"``, ``"int8"`` or ``"int8-dynamic"`` (see the module docstring).
        group_size: inputs per scale group for ``int4`` (32, 64, 128 or 256; every layer's input width
            must be a multiple of it).
        quantize_heads: also quantize the output heads (a child module named ``heads``); kept in float32
            by default (see the module docstring for the measurement).
        inplace: modify ``model`` itself instead of a deep copy.

    Raises:
        ValueError: naming the problem if the mode is unknown, the model is not float32 on the CPU or has
            no linear layer, or a layer's width does not fit ``group_size``.
    """
    _check_model(model, mode)
    skip = set() if quantize_heads else {"heads"}
    if not _linears(model, skip):
        raise ValueError(
            f"quantize {mode}: the model has no nn.Linear layer to quantize outside {sorted(skip)}"
        )
    target = model if inplace else copy.deepcopy(model)
    target.eval()
    if mode == "int8-dynamic":
        return _dynamic_int8(target, skip)
    _replace_linears(target, _linears(target, skip), Int4Linear if mode == "int4" else Int8Linear, group_size)
    if quantize_heads:
        getattr(target, "__dict__", {}).pop("_fused_heads_cache", None)  # a MusicLM's fused float heads
    return target


def quantize_int8(model: M, *, inplace: bool = False) -> M:
    """``quantize(model, "int8-dynamic")`` (kept for code written before :func:`quantize`)."""
    return quantize(model, "int8-dynamic", inplace=inplace)
