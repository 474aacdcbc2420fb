"""One cached decoding position through all the layers of a :class:`Transformer` in one native call.

Where every linear of every layer is an int4 layer on stylecond's CPU kernel (``Int4Linear`` with
``kernel="native"``, after ``quantize(model, "int4")``), :class:`NativeStep` hands the whole layer stack
to ``cpu_decode.c``: norms, int4 linears (norm, GELU and residual fused), self-attention over the KV
cache and cross-attention, with no Python between the ~150 kernel calls of a step. Built once per KV
cache (:meth:`NativeStep.build`), it holds the raw pointers of the weights and the cache, and the tensors
that own them.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from stylecond.kernels import native
from stylecond.layers.kv_cache import KVCache
from stylecond.layers.transformer_layer import TransformerLayer

if TYPE_CHECKING:
    from stylecond.layers.transformer import Transformer


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _norm(module: nn.Module | None, dim: int, keep: list[Tensor]) -> native.Norm | None:
    if (
        not isinstance(module, nn.LayerNorm)
        or module.weight is None
        or tuple(module.normalized_shape) != (dim,)
    ):
        return None
    weight = module.weight.detach().float().contiguous()
    bias = None if module.bias is None else module.bias.detach().float().contiguous()
    keep += [weight] + ([] if bias is None else [bias])
    return native.Norm(weight.data_ptr(), _ptr(bias), float(module.eps))


def _int4(module: nn.Module, shape: tuple[int, int]) -> native.Int4Layer | None:
    """The ``sc_int4`` of a native int4 linear of ``shape`` (in, out) (its ``native_int4()``), else None."""
    spec = getattr(module, "native_int4", None)
    layer = spec() if callable(spec) else None
    if not isinstance(layer, native.Int4Layer) or (layer.k, layer.n) != shape:
        return None
    return layer


class NativeStep:
    """The layer stack of a :class:`Transformer` as a plan for ``cpu_decode.c`` over one :class:`KVCache`.

    Call it with the embedded position ``x [B, D]`` (positions added, float32) and the cache position
    ``pos``: the result is the last layer's output ``[B, D]`` (before the final norm); the new keys and
    values are written into the cache.
    """

    def __init__(
        self,
        kernels: native.NativeKernels,
        layers: ctypes.Array[native.LayerPlan],
        keep: list[Any],
        *,
        num_heads: int,
        ffn_dim: int,
        cache: KVCache,
    ) -> None:
        self.kernels, self.layers, self.keep = kernels, layers, keep
        self.num_heads, self.cache = num_heads, cache
        b, dim = cache.batch_size, cache.keys.shape[2] * cache.keys.shape[4]
        self.scratch = torch.empty(6 * b * dim + b * ffn_dim)

    @classmethod
    def build(cls, transformer: Transformer, cache: KVCache) -> NativeStep | None:
        """The plan, or None where it does not apply: a layer whose linears are not all native int4, norms
        that are not affine LayerNorms, a head width not a multiple of 16 (or > 512), a cache that is not
        float32/bfloat16 on the CPU with float32 positions, or no kernel on this machine."""
        kernels = native.load()[0]
        n_layers, batch, heads, max_len, head_dim = cache.keys.shape
        dim = heads * head_dim
        if (
            kernels is None
            or cache.positions.dtype != torch.float32
            or not native.decode_cache_fits(cache.keys, cache.values)
            or n_layers != len(transformer.layers)
        ):
            return None
        keep: list[Any] = []
        plans = (native.LayerPlan * n_layers)()
        ffn_dim = 0
        for i, layer in enumerate(transformer.layers):
            if not isinstance(layer, TransformerLayer):
                return None
            plan = plans[i]
            sa = layer.self_attn
            ffn = getattr(layer.linear1, "out_features", 0)
            parts = (
                _norm(layer.norm1, dim, keep), _int4(sa.in_proj, (dim, 3 * dim)), _int4(sa.out_proj, (dim, dim)),
                _norm(layer.norm2, dim, keep), _int4(layer.linear1, (dim, ffn)), _int4(layer.linear2, (ffn, dim)),
            )  # fmt: skip
            if any(p is None for p in parts) or sa.num_heads != heads:
                return None
            plan.norm1, plan.in_proj, plan.out_proj, plan.norm2, plan.linear1, plan.linear2 = parts
            keys, values = cache.keys[i], cache.values[i]
            plan.keys, plan.values = keys.data_ptr(), values.data_ptr()
            plan.kv_bf16 = int(cache.keys.dtype == torch.bfloat16)
            keep.append(layer)
            ffn_dim = max(ffn_dim, ffn)
            crossing = layer.cross_attn is not None and cache.cross_kv is not None
            if crossing and not cls._plan_cross(plan, layer, cache, i, dim, keep):
                return None
        return cls(kernels, plans, keep, num_heads=heads, ffn_dim=ffn_dim, cache=cache)

    @staticmethod
    def _plan_cross(
        plan: native.LayerPlan, layer: TransformerLayer, cache: KVCache, i: int, dim: int, keep: list[Any]
    ) -> bool:
        """Fill the cross-attention part of ``plan`` (False when it cannot run natively)."""
        ca = layer.cross_attn
        assert cache.cross_kv is not None and ca is not None
        parts = (
            _norm(layer.norm_cross, dim, keep), _int4(ca.q_proj, (dim, dim)), _int4(ca.out_proj, (dim, dim)),
        )  # fmt: skip
        keys, values = (t.float().contiguous() for t in cache.cross_kv[i])  # [B, H, Sc, Dh]
        if any(p is None for p in parts) or keys.device.type != "cpu":
            return False
        plan.norm_cross, plan.cross_q, plan.cross_out = parts
        valid = None
        if cache.cross_mask is not None:  # [B, 1, 1, Sc] with all-False rows opened; cross_any [B, 1, 1]
            valid = cache.cross_mask[:, 0, 0, :]
            if cache.cross_any is not None:
                valid = valid & (cache.cross_any[:, 0] > 0)
            valid = valid.contiguous()
        keep += [keys, values, valid]
        plan.cross_keys, plan.cross_values, plan.cross_valid = keys.data_ptr(), values.data_ptr(), _ptr(valid)
        plan.cross_len = keys.shape[2]
        return True

    def __call__(self, x: Tensor, pos: int) -> Tensor:
        """``x [B, D]`` float32 at cache position ``pos`` -> the layers' output ``[B, D]``."""
        cache = self.cache
        width = cache.keys.shape[2] * cache.keys.shape[4]
        if tuple(x.shape) != (cache.batch_size, width):
            raise ValueError(
                f"native step: x must be [B={cache.batch_size}, D={width}], got {tuple(x.shape)}"
            )
        out = x.float().contiguous().clone()
        self.kernels.decode_layers(
            self.layers, out, num_heads=self.num_heads, max_len=cache.max_len, pos=pos,
            valid=cache.key_valid, scratch=self.scratch,
        )  # fmt: skip
        return out
