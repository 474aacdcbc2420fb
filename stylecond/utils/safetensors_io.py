"""A safetensors file written one tensor at a time, so converting a memory-mapped checkpoint never holds
a second copy of it (``safetensors.torch.save_file`` first serialises every tensor to bytes). The format
is the library's: ``safetensors.safe_open`` reads what :func:`write_safetensors` writes (tested)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor

_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}  # fmt: skip


def write_safetensors(
    path: str | Path,
    tensors: Mapping[str, Tensor],
    *,
    metadata: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``tensors`` (CPU; memory-mapped ones are read page by page) to ``path`` in safetensors format.

    ``progress(done, total)`` is called after each tensor. The file is written to ``path.tmp`` then
    renamed, so a crash never leaves a truncated ``path``.
    """
    out = Path(path)
    names = sorted(tensors)
    header: dict[str, object] = {"__metadata__": dict(metadata or {})}
    offset = 0
    for name in names:
        t = tensors[name]
        if t.dtype not in _DTYPES:
            raise ValueError(f"tensor {name!r} has dtype {t.dtype}, which safetensors cannot store")
        size = t.numel() * t.element_size()
        header[name] = {
            "dtype": _DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # align the data section
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for i, name in enumerate(names, 1):
            t = tensors[name].detach()
            if t.device.type != "cpu":
                t = t.cpu()
            t = t.contiguous()
            if t.numel():
                f.write(
                    t.reshape(-1).view(torch.uint8).numpy().data
                    if t.dtype != torch.bool
                    else t.numpy().tobytes()
                )
            if progress is not None:
                progress(i, len(names))
    tmp.replace(out)
    return out
