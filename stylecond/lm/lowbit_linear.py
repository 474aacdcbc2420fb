"""Weight-only low-bit linear layers for CPU decoding: int4 (group-wise) and int8 (per channel).

The only place stylecond calls torch's packed low-bit matmul kernels (``torch.ops.aten._weight_int4pack_mm_for_cpu``,
``_convert_weight_to_int4pack_for_cpu``, ``_weight_int8pack_mm``): they are not public API, so this adapter
is pinned by ``tests/stylecond/lm/test_lowbit_linear.py`` (numerics against the dequantized weights).
Weights are quantized once; activations stay in floating point (no per-call activation quantization).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Int4Linear", "Int8Linear"]


def _check(linear: nn.Linear) -> Tensor:
    if linear.weight.device.type != "cpu":
        raise ValueError("low-bit linears run on the CPU: move the model there before quantizing")
    return linear.weight.detach().float()


def _bf16_at_least(scale: Tensor) -> Tensor:
    """``scale`` rounded to a bfloat16 value >= it (and > 0), returned as float32: levels computed with it
    never overflow the integer range."""
    scale = scale.clamp(min=1e-8)
    rounded = scale.to(torch.bfloat16)
    up = torch.nextafter(rounded, torch.tensor(float("inf"), dtype=torch.bfloat16))
    return torch.where(rounded.float() < scale, up, rounded).float()


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
    activations in bfloat16 (the kernel's fast path), outputs float32.

    Args:
        linear: the float layer to replace (its ``in_features`` must be a multiple of ``group_size``).
        group_size: inputs per quantization group (32, 64, 128 or 256).
    """

    def __init__(self, linear: nn.Linear, *, group_size: int = 128) -> None:
        super().__init__(linear)
        n, k = linear.out_features, linear.in_features
        if group_size not in (32, 64, 128, 256) or k % group_size:
            raise ValueError(
                f"int4 needs in_features ({k}) divisible by group_size ({group_size} in 32..256)"
            )
        w = _check(linear).view(n, k // group_size, group_size)
        low, high = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
        # the kernel computes (q - 8) * scale + offset with bfloat16 scale and offset: round those first,
        # then pick each q against the rounded values (so every weight lands on its nearest stored level)
        scale = _bf16_at_least((high - low) / 15)
        offset = (low + 8 * scale).to(torch.bfloat16).float()
        q = ((w - offset) / scale + 8).round().clamp(0, 15).to(torch.int32).view(n, k)
        self.group_size = group_size
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))
        # laid out [K / g, N, 2]
        scales_and_zeros = torch.stack([scale, offset], -1).squeeze(2).transpose(0, 1).contiguous()
        self.register_buffer("scales_and_zeros", scales_and_zeros.to(torch.bfloat16))

    def _matmul(self, x: Tensor) -> Tensor:
        packed, scales = self.get_buffer("packed"), self.get_buffer("scales_and_zeros")
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, self.group_size, scales)

    def dequantized_weight(self) -> Tensor:
        """The ``[out, in]`` float32 weight this layer computes with (for tests and error measurement)."""
        return self._matmul(torch.eye(self.in_features, dtype=torch.bfloat16)).float().t()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}"
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
        scale = _bf16_at_least(w.abs().amax(dim=1) / 127)  # stored in bfloat16: round it first, upwards
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
