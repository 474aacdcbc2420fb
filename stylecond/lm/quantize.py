"""Opt-in weight quantization of a model's linear layers for CPU decoding: one entry point, three modes.

Decoding a :class:`~stylecond.lm.music_lm.MusicLM` on a CPU streams every linear weight once per step, so
its speed is set by the bytes read. :func:`quantize` replaces each ``nn.Linear``:

- ``"int4"``: 4-bit weights, one scale and offset per 32 inputs (``INT4_GROUP_SIZE``, chosen by measurement
  in :mod:`~stylecond.lm.lowbit_linear`; :class:`~stylecond.lm.lowbit_linear.Int4Linear`): 6.4x fewer
  bytes than float32 (5 bits per weight); on stylecond's own
  kernel (activations quantized per call to two int8 terms, :mod:`~stylecond.kernels.native`) where the
  machine builds it, else on torch's packed kernel (bfloat16 activations);
- ``"int8"``: int8 weights, one scale per output channel, bfloat16 activations
  (:class:`~stylecond.lm.lowbit_linear.Int8Linear`);
- ``"int8-dynamic"``: ``torch.ao.quantization.quantize_dynamic`` (fbgemm): int8 weights, activations
  quantized on the fly at each call.

Embeddings (only K rows are read per step) and layer norms stay float32, and so do the K output heads (a
module named ``heads``) unless ``quantize_heads=True``. Measured on the demo model
(``benchmarks/quality_guard.py``, 200 guided steps, two seeds): keeping the heads in float32 cut the mean
KL to float32 from 0.011-0.013 to 0.006-0.007 nats (int4, groups of 128) and from 0.009-0.010 to 0.001
(int8); at the small size they are 3 % of the weights, about 1.6 ms of a step in float32. The KV cache of
a generation of 512 positions or more (~10 s) is kept in bfloat16 (attention runs in bfloat16 over it): on
the demo model the KL to float32 moved by < 0.0002 nats (int4 in groups of 128: 0.0063 -> 0.0064, 0.0069
-> 0.0069 over two seeds), and a 10 s generation at the small size decodes ~20 % faster (35-38 -> 29-32
ms/step in an earlier run with groups of 128); shorter ones stay float32, measured faster there
(``stylecond.lm.music_lm.KV_CACHE_DTYPE_MIN_LEN``). int4 runs on stylecond's kernel with 16-bit
activations by default: 8-bit ones (``activation_bits=8``) make the small LM's step ~15 % faster but more
than double the KL (0.0081 against 0.0034 in groups of 32). It changes the numbers (not bit-exact with
float32): use it for inference only. ``benchmarks/bench_generate.py`` measures speed and the agreement
with float32 decoding.
"""

from __future__ import annotations

import copy
import warnings
from typing import Literal, TypeVar, get_args

import torch
from torch import nn

from stylecond.lm.lowbit_linear import INT4_GROUP_SIZE, ActivationBits, Int4Kernel, Int4Linear, Int8Linear
from stylecond.lm.music_lm import MusicLM

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
    model: nn.Module, names: list[str], mode: str, group_size: int, kernel: Int4Kernel, bits: ActivationBits
) -> None:
    for name in names:
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        child = parent.get_submodule(child_name)
        assert isinstance(child, nn.Linear)
        try:
            layer: nn.Module = (
                Int4Linear(child, group_size=group_size, kernel=kernel, activation_bits=bits)
                if mode == "int4"
                else Int8Linear(child)
            )
        except ValueError as err:
            raise ValueError(f"quantize {mode}: layer {name!r}: {err}") from None
        setattr(parent, child_name, layer)


def quantize(
    model: M,
    mode: QuantizeMode,
    *,
    group_size: int = INT4_GROUP_SIZE,
    quantize_heads: bool = False,
    inplace: bool = False,
    kernel: Int4Kernel = "auto",
    activation_bits: ActivationBits = 16,
    kv_cache_dtype: torch.dtype | None = torch.bfloat16,
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
        kernel: the int4 kernel (``"auto"``, ``"native"`` or ``"torch"``; see
            :class:`~stylecond.lm.lowbit_linear.Int4Linear`).
        activation_bits: the native int4 kernel's activations, 16 (default) or 8 (faster, less exact).
        kv_cache_dtype: the dtype of long decoding KV caches for every
            :class:`~stylecond.lm.music_lm.MusicLM` in ``model`` (its ``kv_cache_dtype``); bfloat16 by
            default: half the cache bytes read per step (see the module docstring); None keeps float32.

    Raises:
        ValueError: naming the problem if the mode is unknown, the model is not float32 on the CPU or has
            no linear layer, or a layer's width does not fit ``group_size`` (naming the layer).
    """
    _check_model(model, mode)
    skip = set() if quantize_heads else {"heads"}
    if not _linears(model, skip):
        raise ValueError(
            f"quantize {mode}: the model has no nn.Linear layer to quantize outside {sorted(skip)}"
        )
    target = model if inplace else copy.deepcopy(model)
    target.eval()
    if kv_cache_dtype is not None:
        if not kv_cache_dtype.is_floating_point:
            raise ValueError(f"quantize: kv_cache_dtype must be a floating dtype, got {kv_cache_dtype}")
        for module in target.modules():
            if isinstance(module, MusicLM):
                module.kv_cache_dtype = kv_cache_dtype
    if mode == "int8-dynamic":
        return _dynamic_int8(target, skip)
    _replace_linears(target, _linears(target, skip), mode, group_size, kernel, activation_bits)
    if quantize_heads:
        getattr(target, "__dict__", {}).pop("_fused_heads_cache", None)  # a MusicLM's fused float heads
    return target


def quantize_int8(model: M, *, inplace: bool = False) -> M:
    """``quantize(model, "int8-dynamic")`` (kept for code written before :func:`quantize`)."""
    return quantize(model, "int8-dynamic", inplace=inplace)
