"""stylecond's own CPU decoding kernels, built on first use and loaded with ctypes.

- ``linear`` (``cpu_kernels.c``): int4 weights x int8 activations, optionally with the layer norm before
  it and the GELU / residual add after it fused. Why: torch's packed int4 kernel
  (``_weight_int4pack_mm_for_cpu``) is bound by unpacking at about 7 GB/s here, while decoding is meant to
  be bound by the bytes it streams. The kernel interleaves 16 output features so that each 32-bit lane of a
  dot-product instruction accumulates one output (AVX512-VNNI ``vpdpbusd``, or AVX2 ``vpmaddubsw``),
  quantizes the activations per row and group to int8 on the fly, and prefetches the weights ahead of the
  read (``benchmarks/bench_generate.py`` measures it).
- ``decode_attention`` (``cpu_attention.c``): one position of self-attention over a KV cache, the cache
  write included (and cross-attention, for the step below).
- ``decode_layers`` (``cpu_decode.c``): one position through every layer of a transformer whose linears are
  all int4 (see :mod:`stylecond.layers.native_step`).

The sources ship with the package and are compiled with the system C compiler (``$CC``, else ``cc``)
for the machine they run on (``-march=native``), into ``$XDG_CACHE_HOME/stylecond/kernels`` (default
``~/.cache/stylecond/kernels``), keyed by the sources, the flags, the compiler and the CPU's features. They
use OpenMP when the compiler has it (on Linux the same ``libgomp.so.1`` as torch, hence torch's
threads). Nothing is downloaded. :func:`load` returns None with a reason when the machine cannot build
them (no compiler, not x86-64, no AVX2): :class:`~stylecond.lm.lowbit_linear.Int4Linear` then falls back
to torch's kernel and attention to torch's.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["Int4Layer", "LayerPlan", "NativeKernels", "Norm", "load", "pack", "unpack"]

_SOURCES = tuple(
    Path(__file__).with_name(name) for name in ("cpu_kernels.c", "cpu_attention.c", "cpu_decode.c")
)
_HEADERS = (Path(__file__).with_name("cpu_math.h"),)
LANES = 16  # output features interleaved per block (one per 32-bit lane of a 512-bit vector)


class Int4Layer(ctypes.Structure):
    """``sc_int4`` of ``cpu_decode.c``: an int4 linear's buffers (from :func:`pack`) and shape."""

    _fields_ = [("packed", ctypes.c_void_p), ("scale", ctypes.c_void_p), ("low", ctypes.c_void_p),
                ("bias", ctypes.c_void_p), ("n", ctypes.c_int64), ("k", ctypes.c_int64),
                ("group", ctypes.c_int64), ("precise", ctypes.c_int32)]  # fmt: skip


class Norm(ctypes.Structure):
    """``sc_norm``: a layer norm's float32 weight, bias (or None) and eps."""

    _fields_ = [("weight", ctypes.c_void_p), ("bias", ctypes.c_void_p), ("eps", ctypes.c_float)]


class LayerPlan(ctypes.Structure):
    """``sc_layer``: one transformer layer for :meth:`NativeKernels.decode_layers` (no cross-attention
    where ``cross_q.packed`` is None)."""

    _fields_ = [("norm1", Norm), ("in_proj", Int4Layer), ("out_proj", Int4Layer), ("keys", ctypes.c_void_p),
                ("values", ctypes.c_void_p), ("kv_bf16", ctypes.c_int32), ("norm_cross", Norm),
                ("cross_q", Int4Layer), ("cross_out", Int4Layer), ("cross_keys", ctypes.c_void_p),
                ("cross_values", ctypes.c_void_p), ("cross_valid", ctypes.c_void_p), ("cross_len", ctypes.c_int64),
                ("norm2", Norm), ("linear1", Int4Layer), ("linear2", Int4Layer)]  # fmt: skip


@dataclass(frozen=True)
class NativeKernels:
    """A loaded kernel library: ``isa`` is 512 (AVX512-VNNI) or 256 (AVX2); ``path`` the shared object."""

    lib: ctypes.CDLL
    isa: int
    path: Path

    def linear(
        self,
        x: Tensor,
        packed: Tensor,
        scale: Tensor,
        low: Tensor,
        group_size: int,
        bias: Tensor | None,
        precise: bool = True,
        *,
        norm: tuple[Tensor, Tensor | None, float] | None = None,
        gelu: bool = False,
        residual: Tensor | None = None,
    ) -> Tensor:
        """``x [M, K]`` float32 contiguous -> ``[M, N]`` float32 (weights from :func:`pack`); ``precise``:
        activations to 15 bits (two int8 terms), else 8. Fused: ``norm = (weight [K], bias [K] or None,
        eps)`` layer-normalizes the rows first; ``gelu`` applies the exact GELU to the output, then
        ``residual [M, N]`` (float32 contiguous) is added."""
        m, k = x.shape
        n = scale.shape[0] * LANES
        nw, nb, eps = norm if norm is not None else (None, None, 0.0)
        _check_f32(x, (m, k), "x")
        for t, shape, name in (
            (nw, (k,), "norm weight"),
            (nb, (k,), "norm bias"),
            (residual, (m, n), "residual"),
        ):
            if t is not None:
                _check_f32(t, shape, name)
        y = x.new_empty(m, n)
        rc = self.lib.stylecond_int4_linear(
            x.data_ptr(), m, k, packed.data_ptr(), scale.data_ptr(), low.data_ptr(), n, group_size,
            None if bias is None else bias.data_ptr(), y.data_ptr(), int(precise), torch.get_num_threads(),
            None if nw is None else nw.data_ptr(), None if nb is None else nb.data_ptr(), eps,
            None if residual is None else residual.data_ptr(), int(gelu),
        )  # fmt: skip
        if rc:
            raise RuntimeError(f"int4 kernel failed ({'out of memory' if rc == -1 else 'bad shape'}): "
                               f"x {tuple(x.shape)}, N={n}, group_size={group_size}")  # fmt: skip
        return y

    def decode_layers(
        self,
        layers: ctypes.Array[LayerPlan],
        x: Tensor,
        *,
        num_heads: int,
        max_len: int,
        pos: int,
        valid: Tensor | None,
        scratch: Tensor,
    ) -> None:
        """Run ``x [B, dim]`` (float32 contiguous, updated in place) through ``layers`` at cache position
        ``pos`` (``cpu_decode.c``); ``valid [B, max_len]`` bool or None; ``scratch`` float32 of at least
        ``6 * B * dim + B * ffn_dim`` elements. The plan's pointers must be alive and valid (built by
        :class:`~stylecond.layers.native_step.NativeStep`, which checks every shape)."""
        b, dim = x.shape
        _check_f32(x, (b, dim), "x")
        if not 0 <= pos < max_len or (valid is not None and tuple(valid.shape) != (b, max_len)):
            raise ValueError(f"decode_layers: pos={pos} outside the cache of {max_len} or bad valid shape")
        rc = self.lib.stylecond_decode_layers(
            ctypes.byref(layers), len(layers), x.data_ptr(), b, dim, num_heads, dim // num_heads, max_len, pos,
            None if valid is None else valid.data_ptr(), max_len, scratch.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        if rc:
            raise RuntimeError(f"decode step failed ({'out of memory' if rc == -1 else 'bad shape'}): "
                               f"x {tuple(x.shape)}, {len(layers)} layers, pos={pos}")  # fmt: skip

    def decode_attention(
        self, qkv: Tensor, keys: Tensor, values: Tensor, pos: int, valid: Tensor | None, num_heads: int
    ) -> Tensor:
        """One decoding step of self-attention (``cpu_attention.c``): ``qkv [B, 3 * D]`` float32 contiguous
        (the new position's fused projection), ``keys``/``values [B, H, M, Dh]`` contiguous float32 or
        bfloat16 (k and v are written at ``pos``), ``valid [B, >= pos + 1]`` bool or None -> ``[B, D]``
        float32, attending to the valid keys ``0 .. pos`` with scale ``Dh ** -0.5``."""
        b, width = qkv.shape[0], qkv.shape[1] // 3
        head_dim, max_len = keys.shape[3], keys.shape[2]
        _check_f32(qkv, (b, 3 * num_heads * head_dim), "qkv")
        if keys.shape != (b, num_heads, max_len, head_dim) or values.shape != keys.shape:
            raise ValueError(f"keys/values must be [B={b}, H={num_heads}, M, Dh], got {tuple(keys.shape)}, "
                             f"{tuple(values.shape)}")  # fmt: skip
        if keys.dtype not in (torch.float32, torch.bfloat16) or values.dtype != keys.dtype:
            raise ValueError(f"keys/values must be float32 or bfloat16, got {keys.dtype}, {values.dtype}")
        if not (keys.is_contiguous() and values.is_contiguous()) or not 0 <= pos < max_len:
            raise ValueError(f"keys/values must be contiguous and 0 <= pos={pos} < M={max_len}")
        if valid is not None and (valid.dtype != torch.bool or valid.shape[0] != b or valid.shape[-1] <= pos
                                  or valid.stride(-1) != 1):  # fmt: skip
            raise ValueError(
                f"valid must be bool [B={b}, > pos={pos}] with unit stride, got {tuple(valid.shape)}"
            )
        out = qkv.new_empty(b, width)
        rc = self.lib.stylecond_decode_attention(
            qkv.data_ptr(), b, num_heads, head_dim, keys.data_ptr(), values.data_ptr(), max_len, pos,
            int(keys.dtype == torch.bfloat16), None if valid is None else valid.data_ptr(),
            0 if valid is None else valid.stride(0), head_dim**-0.5, out.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        if rc:
            raise RuntimeError(f"decode attention failed ({'out of memory' if rc == -1 else 'bad shape'}): "
                               f"qkv {tuple(qkv.shape)}, cache {tuple(keys.shape)}, pos={pos}")  # fmt: skip
        return out


def decode_cache_fits(keys: Tensor, values: Tensor) -> bool:
    """Whether the decode-attention kernel can read a KV cache (``[..., max_len, Dh]``): on the CPU,
    float32 or bfloat16, contiguous, ``Dh`` a multiple of 16 and at most 512."""
    head_dim = keys.shape[-1]
    return (
        keys.device.type == "cpu"
        and keys.dtype in (torch.float32, torch.bfloat16)
        and values.dtype == keys.dtype
        and head_dim % 16 == 0
        and head_dim <= 512
        and keys.is_contiguous()
        and values.is_contiguous()
    )


def _check_f32(t: Tensor, shape: tuple[int, ...], name: str) -> None:
    """The kernels read raw pointers: a wrong shape, dtype or layout must be an error, not a bad read."""
    if t.dtype != torch.float32 or not t.is_contiguous() or tuple(t.shape) != shape or t.device.type != "cpu":
        raise ValueError(f"{name} must be a contiguous float32 CPU tensor of shape {shape}, got "
                         f"{t.dtype} {tuple(t.shape)} on {t.device} (contiguous={t.is_contiguous()})")  # fmt: skip


def cache_dir() -> Path:
    """Where built kernels are kept: ``$XDG_CACHE_HOME/stylecond/kernels`` (default ``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stylecond" / "kernels"


def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return platform.processor()


def _compile(cc: str, flags: list[str], out: Path) -> str | None:
    """Compile the kernel to ``out``; returns None, or the compiler's complaint."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        target = Path(tmp) / out.name
        try:
            done = subprocess.run(
                [cc, *flags, "-shared", "-fPIC", "-o", str(target), *map(str, _SOURCES), "-lm"],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as err:
            return str(err)
        if done.returncode:
            return (done.stderr.strip().splitlines() or ["failed"])[-1]
        os.replace(target, out)  # atomic: concurrent builders (DDP ranks) never see half a file
    return None


def build(*, march: str = "native", directory: Path | None = None) -> tuple[Path | None, str]:
    """Compile the kernel for ``-march={march}`` (cached); returns (path or None, reason if None)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None, f"the int4 kernel is x86-64 only (this machine: {platform.machine()})"
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None, "no C compiler found (set $CC or install gcc)"
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"C compiler {cc!r} does not run: {err}"
    errors = []
    for openmp in (["-fopenmp"], []):  # without OpenMP (e.g. Apple clang): one thread
        flags = ["-O3", f"-march={march}", "-std=gnu11", *openmp]
        key = hashlib.sha256(
            "\0".join(
                [*(p.read_text() for p in _SOURCES + _HEADERS), *flags, version, _cpu_features()]
            ).encode()
        ).hexdigest()[:20]
        path = (directory or cache_dir()) / f"cpu_kernels-{key}.so"
        if path.exists():
            return path, ""
        error = _compile(cc, flags, path)
        if error is None:
            return path, ""
        errors.append(error)
    return None, f"could not compile {', '.join(p.name for p in _SOURCES)} with {cc}: {errors[0]}"


def open_library(path: Path) -> NativeKernels:
    """Load a built kernel and declare its C signatures."""
    lib = ctypes.CDLL(str(path))
    lib.stylecond_int4_isa.restype = ctypes.c_int
    fn = lib.stylecond_int4_linear
    fn.restype = ctypes.c_int
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    fn.argtypes = [p, i64, i64, p, p, p, i64, i64, p, p, ctypes.c_int, ctypes.c_int,
                   p, p, ctypes.c_float, p, ctypes.c_int]  # fmt: skip
    step = lib.stylecond_decode_layers
    step.restype = ctypes.c_int
    step.argtypes = [p, i64, p, i64, i64, i64, i64, i64, i64, p, i64, p, ctypes.c_int]
    att = lib.stylecond_decode_attention
    att.restype = ctypes.c_int
    att.argtypes = [p, i64, i64, i64, p, p, i64, i64, ctypes.c_int, p, i64, ctypes.c_float, p, ctypes.c_int]
    return NativeKernels(lib=lib, isa=int(lib.stylecond_int4_isa()), path=path)


@functools.cache
def load() -> tuple[NativeKernels | None, str]:
    """The kernel for this machine, built once per process (None and the reason when it cannot be)."""
    path, reason = build()
    if path is None:
        return None, reason
    try:
        return open_library(path), ""
    except OSError as err:
        return None, f"could not load {path}: {err}"


def pack(q: Tensor, scale: Tensor, low: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Lay out 4-bit levels ``q [N, K]`` (0..15) and per-group ``scale``, ``low [N, K / G]`` for the kernel:
    ``packed [N / 16, K * 8]`` uint8, ``scale``/``low`` ``[N / 16, K / G, 16]`` float16."""
    n, k = q.shape
    levels = q.to(torch.uint8).view(n // LANES, LANES, k // 8, 2, 4)
    packed = (levels[:, :, :, 0] | (levels[:, :, :, 1] << 4)).permute(0, 2, 1, 3).reshape(n // LANES, -1)

    def per_block(t: Tensor) -> Tensor:
        return t.to(torch.float16).view(n // LANES, LANES, -1).transpose(1, 2).contiguous()

    return packed.contiguous(), per_block(scale), per_block(low)


def unpack(packed: Tensor, scale: Tensor, low: Tensor) -> Tensor:
    """The ``[N, K]`` float32 weight that :func:`pack`'s output stands for."""
    blocks, groups = scale.shape[0], scale.shape[1]
    k = packed.shape[1] // 8
    b = packed.view(blocks, k // 8, LANES, 4)
    q = torch.stack([b & 0x0F, b >> 4], dim=3).permute(0, 2, 1, 3, 4).reshape(blocks * LANES, k)
    per_out = (
        scale.transpose(1, 2).reshape(-1, groups).float(),
        low.transpose(1, 2).reshape(-1, groups).float(),
    )
    g = k // groups
    return (q.float().view(-1, groups, g) * per_out[0][..., None] + per_out[1][..., None]).view(-1, k)
