"""stylecond's own CPU decoding kernel (``cpu_kernels.c``): built on first use, loaded with ctypes.

``linear``: int4 weights x int8 activations. Why: torch's packed int4 kernel (``_weight_int4pack_mm_for_cpu``) is bound by unpacking at about 7 GB/s
here, while decoding is meant to be bound by the bytes it streams. The kernel interleaves 16 output
features so that each 32-bit lane of a dot-product instruction accumulates one output (AVX512-VNNI
``vpdpbusd``, or AVX2 ``vpmaddubsw``), quantizes the activations per row and group to int8 on the fly, and
prefetches the weights ahead of the read (``benchmarks/bench_generate.py`` measures it).

The source ships with the package and is compiled with the system C compiler (``$CC``, else ``cc``)
for the machine it runs on (``-march=native``), into ``$XDG_CACHE_HOME/stylecond/kernels`` (default
``~/.cache/stylecond/kernels``), keyed by the source, the flags, the compiler and the CPU's features. It
uses OpenMP when the compiler has it (on Linux the same ``libgomp.so.1`` as torch, hence torch's
threads). Nothing is downloaded. :func:`load` returns None with a reason when the machine cannot build it
(no compiler, not x86-64, no AVX2): :class:`~stylecond.lm.lowbit_linear.Int4Linear` then falls back to
torch's kernel.
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

__all__ = ["NativeKernels", "load", "pack", "unpack"]

_SOURCE = Path(__file__).with_name("cpu_kernels.c")
LANES = 16  # output features interleaved per block (one per 32-bit lane of a 512-bit vector)


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
    ) -> Tensor:
        """``x [M, K]`` float32 contiguous -> ``[M, N]`` float32 (weights from :func:`pack`); ``precise``:
        activations to 15 bits (two int8 terms), else 8."""
        m, k = x.shape
        n = scale.shape[0] * LANES
        y = x.new_empty(m, n)
        rc = self.lib.stylecond_int4_linear(
            x.data_ptr(), m, k, packed.data_ptr(), scale.data_ptr(), low.data_ptr(), n, group_size,
            None if bias is None else bias.data_ptr(), y.data_ptr(), int(precise), torch.get_num_threads(),
        )  # fmt: skip
        if rc:
            raise RuntimeError(f"int4 kernel failed ({'out of memory' if rc == -1 else 'bad shape'}): "
                               f"x {tuple(x.shape)}, N={n}, group_size={group_size}")  # fmt: skip
        return y


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
                [cc, *flags, "-shared", "-fPIC", "-o", str(target), str(_SOURCE)],
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
            "\0".join([_SOURCE.read_text(), *flags, version, _cpu_features()]).encode()
        ).hexdigest()[:20]
        path = (directory or cache_dir()) / f"cpu_kernels-{key}.so"
        if path.exists():
            return path, ""
        error = _compile(cc, flags, path)
        if error is None:
            return path, ""
        errors.append(error)
    return None, f"could not compile {_SOURCE.name} with {cc}: {errors[0]}"


def open_library(path: Path) -> NativeKernels:
    """Load a built kernel and declare its C signatures."""
    lib = ctypes.CDLL(str(path))
    lib.stylecond_int4_isa.restype = ctypes.c_int
    fn = lib.stylecond_int4_linear
    fn.restype = ctypes.c_int
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    fn.argtypes = [p, i64, i64, p, p, p, i64, i64, p, p, ctypes.c_int, ctypes.c_int]
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
