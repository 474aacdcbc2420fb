"""The streaming safetensors writer: what safetensors itself reads back, for every dtype we store."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from stylecond.utils.safetensors_io import write_safetensors


def test_round_trip_through_the_safetensors_library(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "a.f32": torch.randn(3, 5, generator=g),
        "b.bf16": torch.randn(7, generator=g).bfloat16(),
        "c.f16": torch.randn(2, 2, generator=g).half(),
        "d.long": torch.tensor(12345678901),
        "e.bool": torch.tensor([True, False, True]),
        "f.empty": torch.zeros(0, 4),
        "g.view": torch.randn(4, 6, generator=g).t(),  # not contiguous
    }
    seen: list[tuple[int, int]] = []
    path = write_safetensors(
        tmp_path / "w.safetensors", tensors, metadata={"k": "v"}, progress=lambda d, n: seen.append((d, n))
    )
    loaded = load_file(str(path))
    assert loaded.keys() == tensors.keys()
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype and torch.equal(loaded[name], value), name
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"k": "v"}
    assert seen[-1] == (7, 7) and not (tmp_path / "w.safetensors.tmp").exists()


def test_memory_mapped_sources_are_written_without_loading_them(tmp_path: Path) -> None:
    src = tmp_path / "src.pt"
    torch.save({"w": torch.arange(1000.0)}, src)
    mapped = torch.load(src, mmap=True, weights_only=True)
    out = write_safetensors(tmp_path / "out.safetensors", mapped)
    assert torch.equal(load_file(str(out))["w"], torch.arange(1000.0))
