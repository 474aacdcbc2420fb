"""Low-bit linear layers for CPU decoding: int4 (group-wise) and int8 (per channel) weights.

int4 runs on stylecond's own kernel (:mod:`stylecond.kernels.native`: activations quantized per row and
group at each call, to two int8 terms or one) where it builds, else on torch's packed kernel (bfloat16
activations). This is
the only place stylecond calls torch's packed low-bit matmul kernels
(``torch.ops.aten._weight_int4pack_mm_for_cpu``, ``_convert_weight_to_int4pack_for_cpu``,
``_weight_int8pack_mm``): they are not public API, so this adapter is pinned by
``tests/stylecond/lm/test_lowbit_linear.py`` (numerics against the dequantized weights).
"""

from __future__ import annotations

import functools
import warnings
from typing import Literal

import torch
from torch import Tensor, nn

from stylecond.kernels import native

__all__ = ["INT4_KERNELS", "ActivationBits", "Int4Kernel", "Int4Linear", "Int8Linear"]

Int4Kernel = Literal["auto", "native", "torch"]
ActivationBits = Literal[8, 16]
INT4_KERNELS: tuple[str, ...] = ("auto", "native", "torch")

#: int4's default inputs per scale group. Measured on the demo model (``benchmarks/demo_quantized.py --seeds
#: 8``, 192 clips per cell): the largest drop of a style-classifier cell against float32 was 0.09 with groups
#: of 128, 0.06 with 64 and 0.04 with 32 (mean KL 0.0063 from an earlier run, 0.0038, 0.0034 nats). At the
#: small and medium sizes groups of 32 cost ~8 % more time per step than 128 (small: 17.5 against 16.2 ms,
#: medium: 57.3 against 52.9, medians of interleaved runs). llama.cpp's 4-bit formats use blocks of 32 too.
INT4_GROUP_SIZE = 32


def _check(linear: nn.Linear) -> Tensor:
    if linear.weight.device.type != "cpu":
        raise ValueError("low-bit linears run on the CPU: move the model there before quantizing")
    return linear.weight.detach().float()


def _at_least(scale: Tensor, dtype: torch.dtype = torch.bfloat16) -> Tensor:
    """``scale`` rounded to a ``dtype`` value >= it (and > 0), returned as float32: levels computed with it
    never overflow the integer range."""
    scale = scale.clamp(min=1e-8)
    rounded = scale.to(dtype)
    up = torch.nextafter(rounded, torch.tensor(float("inf"), dtype=dtype))
    return torch.where(rounded.float() < scale, up, rounded).float()


@functools.cache
def _warn_fallback(reason: str) -> None:
    warnings.warn(f"int4: using torch's slower packed kernel: {reason}", stacklevel=3)


def _resolve_kernel(kernel: str, weight: Tensor) -> str:
    """``"native"`` or ``"torch"`` for a layer (RuntimeError if ``native`` cannot run it)."""
    if kernel not in INT4_KERNELS:
        raise ValueError(f"int4 kernel must be one of {', '.join(INT4_KERNELS)}; got {kernel!r}")
    if kernel == "torch":
        return kernel
    lib, reason = native.load()
    if lib is not None and weight.abs().max() > 6e4:
        reason = "weights beyond float16 range"
    elif lib is not None:
        return "native"
    if kernel == "native":
        raise RuntimeError(f"int4 kernel 'native' cannot run this layer: {reason}")
    _warn_fallback(reason)
    return "torch"


class _LowBitLinear(nn.Module):
    """What both layers share: a float32 bias, bfloat16 activations into a packed kernel, float32 out."""

    in_features: int
    out_features: int

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        bias = linear.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().float().clone(), requires_grad=False)

    def _matmul(self, x: Tensor) -> Tensor:
        """``x [M, in_features]`` bfloat16 -> ``[M, out_features]``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``x [..., in_features]`` -> ``[..., out_features]`` float32."""
        shape = x.shape
        y = self._matmul(x.reshape(-1, self.in_features).to(torch.bfloat16)).float()
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features)


class Int4Linear(_LowBitLinear):
    """``nn.Linear`` with 4-bit weights: asymmetric, one scale and offset per ``group_size`` inputs;
    float32 in and out.

    Args:
        linear: the float layer to replace (``in_features`` a multiple of ``group_size``, ``out_features``
            of 16).
        group_size: inputs per quantization group (32, 64, 128 or 256; default :data:`INT4_GROUP_SIZE`).
        kernel: ``"native"`` (stylecond's kernel, :mod:`~stylecond.kernels.native`; activations quantized
            per row and group at each call), ``"torch"`` (torch's packed kernel; bfloat16 activations), or
            ``"auto"``: native where it builds, else torch (with a warning naming why).
        activation_bits: the native kernel's activations: 16 (two int8 terms, ~15 significant bits per
            group: as close to float32 as torch's kernel) or 8 (one term: about 1.2x faster linears, twice
            the KL to float32 on the demo model, see ``quantize``).
    """

    def __init__(
        self,
        linear: nn.Linear,
        *,
        group_size: int = INT4_GROUP_SIZE,
        kernel: Int4Kernel = "auto",
        activation_bits: ActivationBits = 16,
    ) -> None:
        super().__init__(linear)
        n, k = linear.out_features, linear.in_features
        if group_size not in (32, 64, 128, 256) or k % group_size:
            raise ValueError(
                f"int4 needs in_features ({k}) divisible by group_size ({group_size} in 32..256)"
            )
        if n % 16:  # both kernels interleave 16 outputs
            raise ValueError(f"int4 needs out_features ({n}) divisible by 16")
        if activation_bits not in (8, 16):
            raise ValueError(f"int4 activation_bits must be 8 or 16, got {activation_bits!r}")
        w = _check(linear)
        self.group_size, self.activation_bits = group_size, activation_bits
        self.kernel = _resolve_kernel(kernel, w)
        w = w.view(n, k // group_size, group_size)
        low, high = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
        if self.kernel == "native":  # w = scale * q + low, float16 scale and low
            scale = _at_least((high - low) / 15, torch.float16)
            low = low.to(torch.float16).float()
            q = ((w - low) / scale).round().clamp(0, 15).to(torch.uint8).view(n, k)
            packed, scale16, low16 = native.pack(q, scale.squeeze(2), low.squeeze(2))
            self.register_buffer("packed", packed)
            self.register_buffer("scale", scale16)
            self.register_buffer("low", low16)
            return
        # torch's kernel computes (q - 8) * scale + offset with bfloat16 scale and offset: round those
        # first, then pick each q against the rounded values (every weight lands on its nearest level)
        scale = _at_least((high - low) / 15)
        offset = (low + 8 * scale).to(torch.bfloat16).float()
        q = ((w - offset) / scale + 8).round().clamp(0, 15).to(torch.int32).view(n, k)
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))
        # laid out [K / g, N, 2]
        scales_and_zeros = torch.stack([scale, offset], -1).squeeze(2).transpose(0, 1).contiguous()
        self.register_buffer("scales_and_zeros", scales_and_zeros.to(torch.bfloat16))

    def forward(self, x: Tensor) -> Tensor:
        """``x [..., in_features]`` -> ``[..., out_features]`` float32 (inference only: no gradient)."""
        if self.kernel == "torch":
            return super().forward(x)
        if x.requires_grad and torch.is_grad_enabled():
            raise RuntimeError("Int4Linear is inference-only: run it under torch.no_grad()")
        lib = native.load()[0]
        if lib is None:
            raise RuntimeError(f"int4 native kernel unavailable: {native.load()[1]}")
        rows = x.reshape(-1, self.in_features)
        if rows.dtype != torch.float32 or not rows.is_contiguous():
            rows = rows.float().contiguous()
        b: dict[str, Tensor] = self._buffers  # type: ignore[assignment]  # direct: ~100 calls per step
        y = lib.linear(
            rows, b["packed"], b["scale"], b["low"], self.group_size, self.bias, self.activation_bits == 16
        )
        return y.view(*x.shape[:-1], self.out_features)

    def native_int4(self) -> native.Int4Layer | None:
        """This layer for ``cpu_decode.c`` (raw pointers to its buffers: valid while they are), or None on
        torch's kernel."""
        if self.kernel != "native":
            return None
        b: dict[str, Tensor] = self._buffers  # type: ignore[assignment]
        return native.Int4Layer(
            b["packed"].data_ptr(), b["scale"].data_ptr(), b["low"].data_ptr(),
            None if self.bias is None else self.bias.data_ptr(), self.out_features, self.in_features,
            self.group_size, int(self.activation_bits == 16),
        )  # fmt: skip

    def _matmul(self, x: Tensor) -> Tensor:
        packed, scales = self.get_buffer("packed"), self.get_buffer("scales_and_zeros")
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, self.group_size, scales)

    def dequantized_weight(self) -> Tensor:
        """The ``[out, in]`` float32 weight this layer computes with (for tests and error measurement)."""
        if self.kernel == "native":
            buffers = self.get_buffer("packed"), self.get_buffer("scale"), self.get_buffer("low")
            return native.unpack(*buffers)
        return self._matmul(torch.eye(self.in_features, dtype=torch.bfloat16)).float().t()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"group_size={self.group_size}, kernel={self.kernel}"
            + (f", activation_bits={self.activation_bits}" if self.kernel == "native" else "")
        )


class Int8Linear(_LowBitLinear):
    """``nn.Linear`` with int8 weights and one scale per output channel; activations in bfloat16 (the
    kernel's fast path), outputs float32.

    Args:
        linear: the float layer to replace.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__(linear)
        w = _check(linear)
        scale = _at_least(w.abs().amax(dim=1) / 127)  # stored in bfloat16: round it first, upwards
        self.register_buffer("weight_int8", (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scale.to(torch.bfloat16))

    def _matmul(self, x: Tensor) -> Tensor:
        return torch.ops.aten._weight_int8pack_mm(
            x, self.get_buffer("weight_int8"), self.get_buffer("scales")
        )

    def dequantized_weight(self) -> Tensor:
        """The ``[out, in]`` float32 weight this layer computes with."""
        weight, scales = self.get_buffer("weight_int8"), self.get_buffer("scales")
        return weight.float() * scales.float()[:, None]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
